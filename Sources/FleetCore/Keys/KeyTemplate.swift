import Foundation

/// Where a file goes in the bucket, as a template: `{prefix}/{relpath}`, `{device}/{date}/{source}/{relpath}`.
///
/// Placeholders: `{prefix}`, `{relpath}` (the path below the source, or below the bucket directory),
/// `{filename}`, `{device}`, `{project}`, `{source}`, `{date}` (`YYYY-MM-DD` of the file's mtime).
package struct KeyTemplate: Sendable, Equatable, CustomStringConvertible {
    package enum Placeholder: String, Sendable, CaseIterable {
        case prefix, relpath, filename, device, project, source, date
    }

    enum Part: Sendable, Equatable {
        case literal(String)
        case placeholder(Placeholder)
    }

    package let description: String
    let parts: [Part]

    /// - Throws: `KeyTemplateError` for an unknown placeholder, an unclosed `{`, a `}` without its `{`, a `..` path
    ///   segment, or a template that does not place the file by its path (`{relpath}` or `{filename}`
    ///   must appear).
    package init(_ template: String) throws(KeyTemplateError) {
        description = template
        var parts: [Part] = []
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            if rest[..<open].contains("}") { throw KeyTemplateError("'}' without '{'") }
            if open > rest.startIndex { parts.append(.literal(String(rest[..<open]))) }
            guard let close = rest[open...].firstIndex(of: "}") else { throw KeyTemplateError("unclosed '{'") }
            let name = String(rest[rest.index(after: open)..<close])
            guard let placeholder = Placeholder(rawValue: name) else {
                let known = Placeholder.allCases.map { "{\($0.rawValue)}" }.joined(separator: ", ")
                throw KeyTemplateError("unknown placeholder {\(name)}; known: \(known)")
            }
            parts.append(.placeholder(placeholder))
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty { parts.append(.literal(String(rest))) }
        if rest.contains("}") { throw KeyTemplateError("'}' without '{'") }
        guard parts.contains(.placeholder(.relpath)) || parts.contains(.placeholder(.filename)) else {
            throw KeyTemplateError("must contain {relpath} or {filename}, or every file would get the same key")
        }
        self.parts = parts
        // `.` segments are dropped when a key is rendered; a `..` segment the template writes itself would
        // make every key climb out of its place, and S3 refuses such keys.
        if render({ _ in "x" }).split(separator: "/").contains("..") {
            throw KeyTemplateError("a '..' path segment is not allowed in a key")
        }
    }

    package func uses(_ placeholder: Placeholder) -> Bool { parts.contains(.placeholder(placeholder)) }

    /// The fixed beginning every key of this template shares, for listing the destination: the template up to
    /// the first placeholder that varies per file, cut back to a whole path segment.
    package func listingPrefix(prefix: String, device: String, project: String) -> String {
        var text = ""
        for part in parts {
            switch part {
            case .literal(let literal): text += literal
            case .placeholder(.prefix): text += prefix
            case .placeholder(.device): text += device
            case .placeholder(.project): text += project
            case .placeholder: return KeyTemplate.wholeSegments(text)
            }
        }
        return KeyTemplate.wholeSegments(text)
    }

    private static func wholeSegments(_ text: String) -> String {
        let normalized = text.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        guard !normalized.isEmpty else { return "" }
        if text.hasSuffix("/") { return normalized + "/" }
        guard let slash = normalized.lastIndex(of: "/") else { return "" }
        return String(normalized[...slash])
    }

    /// Fills the template and normalises the result: no empty segments (`//`), no leading or trailing `/`,
    /// no `.` segments.
    func render(_ value: (Placeholder) -> String) -> String {
        var raw = ""
        for part in parts {
            switch part {
            case .literal(let text): raw += text
            case .placeholder(let placeholder): raw += value(placeholder)
            }
        }
        return raw.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }.joined(separator: "/")
    }
}

package struct KeyTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}
