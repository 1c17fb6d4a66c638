import FleetSystem
import Foundation

/// A predecessor's configuration turned into ours, by `master import-config`: the keys in the order they are
/// written, each with the old key it came from, and the old keys that could not be carried over.
///
/// The agent's configuration is written as YAML with a `#` comment on every key; a session's as JSON, which
/// cannot hold comments, so `mappingLines()` says where each key came from.
package struct ImportedConfig: Sendable, Equatable {
    /// YAML for the agent (`master run`), JSON for a session (`upload`).
    package enum Format: String, Sendable {
        case yaml, json
    }

    /// A value in the written configuration.
    package indirect enum Value: Sendable, Equatable {
        case text(String)
        case number(Double)
        case bool(Bool)
        case list([Value])
        case object([Entry])
    }

    /// One key with its value and where it came from.
    package struct Entry: Sendable, Equatable {
        package var key: String
        package var value: Value
        /// The old key it came from, or why it is written though the old file did not say it.
        package var origin: String?

        package init(_ key: String, _ value: Value, origin: String?) {
            self.key = key
            self.value = value
            self.origin = origin
        }
    }

    /// An old key that has no place in the new configuration.
    package struct Left: Sendable, Equatable {
        /// The old key, as the old file writes it (`upload.queue_file`).
        package var key: String
        /// Why, and what to do instead.
        package var reason: String
    }

    package var format: Format
    /// The tool it came from and its file, for the header comment.
    package var source: String
    package var entries: [Entry] = []
    /// Old keys not carried over, in the order they were met.
    package var left: [Left] = []
    /// What else the operator should know: values taken from this shell's environment, behaviour that
    /// differs.
    package var notices: [String] = []

    package init(format: Format, source: String) {
        self.format = format
        self.source = source
    }

    // MARK: - Building

    /// Sets `value` at the dotted `path` (`agent.schedule.every_hours`), creating objects in order on the way.
    mutating func set(_ path: String, _ value: Value, from origin: String?) {
        Self.set(&entries, path.split(separator: ".").map(String.init)[...], value, origin)
    }

    private static func set(_ entries: inout [Entry], _ path: ArraySlice<String>, _ value: Value, _ origin: String?) {
        guard let head = path.first else { return }
        let rest = path.dropFirst()
        let index = entries.firstIndex { $0.key == head }
        if rest.isEmpty {
            if let index {
                entries[index] = Entry(head, value, origin: origin)
            } else {
                entries.append(Entry(head, value, origin: origin))
            }
            return
        }
        var children: [Entry] = []
        if let index, case .object(let existing) = entries[index].value { children = existing }
        set(&children, rest, value, origin)
        if let index {
            entries[index].value = .object(children)
        } else {
            entries.append(Entry(head, .object(children), origin: nil))
        }
    }

    /// Gives the section at the dotted `path`, once written, the old key it came from.
    mutating func annotate(_ path: String, from origin: String) {
        func walk(_ entries: inout [Entry], _ path: ArraySlice<String>) {
            guard let head = path.first, let index = entries.firstIndex(where: { $0.key == head }) else { return }
            guard path.count > 1 else {
                entries[index].origin = origin
                return
            }
            guard case .object(var children) = entries[index].value else { return }
            walk(&children, path.dropFirst())
            entries[index].value = .object(children)
        }
        walk(&entries, path.split(separator: ".").map(String.init)[...])
    }

    /// Notes an old key that is not carried over.
    mutating func leave(_ key: String, _ reason: String) { left.append(Left(key: key, reason: reason)) }

    // MARK: - Rendering

    /// The configuration as written to the file: YAML with a comment on every key, or JSON.
    package func rendered() -> String {
        switch format {
        case .yaml: renderedYAML()
        case .json: renderedJSON()
        }
    }

    /// For JSON, which cannot hold comments: `s3.bucket ← bucket_name`, one line per key with an origin.
    package func mappingLines() -> [String] {
        var lines: [String] = []
        func walk(_ entries: [Entry], _ prefix: String) {
            for entry in entries {
                let path = prefix.isEmpty ? entry.key : prefix + "." + entry.key
                if let origin = entry.origin { lines.append("\(path) ← \(origin)") }
                if case .object(let children) = entry.value { walk(children, path) }
                if case .list(let items) = entry.value {
                    for (index, item) in items.enumerated() {
                        if case .object(let children) = item { walk(children, "\(path)[\(index)]") }
                    }
                }
            }
        }
        walk(entries, "")
        return lines
    }

    private func renderedYAML() -> String {
        var lines = [
            "# Imported by master import-config from \(source).",
            "# Each key's comment names the old key it came from; check it with master run --check.",
            "",
        ]
        lines += Self.yamlLines(entries, indent: 0)
        return lines.joined(separator: "\n") + "\n"
    }

    private static func yamlLines(_ entries: [Entry], indent: Int) -> [String] {
        let pad = String(repeating: " ", count: indent)
        var lines: [String] = []
        for entry in entries {
            let comment = entry.origin.map { "  # \($0)" } ?? ""
            switch entry.value {
            case .object(let children):
                lines.append("\(pad)\(entry.key):\(comment)")
                lines += yamlLines(children, indent: indent + 2)
            case .list(let items) where items.contains(where: \.isObject):
                lines.append("\(pad)\(entry.key):\(comment)")
                for item in items {
                    guard case .object(let children) = item else {
                        lines.append("\(pad)  - \(inline(item))")
                        continue
                    }
                    // The item's first line carries the dash; the rest keep their indentation under it.
                    var itemLines = yamlLines(children, indent: indent + 4)
                    if !itemLines.isEmpty { itemLines[0] = "\(pad)  - " + itemLines[0].dropFirst(indent + 4) }
                    lines += itemLines
                }
            default:
                lines.append("\(pad)\(entry.key): \(inline(entry.value))\(comment)")
            }
        }
        return lines
    }

    /// A scalar or a list of scalars on one line, in a form YAML and JSON read alike (strings double-quoted).
    private static func inline(_ value: Value) -> String {
        switch value {
        case .text(let text): quoted(text)
        case .number(let number):
            number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
        case .bool(let flag): flag ? "true" : "false"
        case .list(let items): "[" + items.map(inline).joined(separator: ", ") + "]"
        case .object(let entries):
            "{" + entries.map { quoted($0.key) + ": " + inline($0.value) }.joined(separator: ", ") + "}"
        }
    }

    /// `text` as a JSON string literal, which is also a YAML double-quoted scalar.
    private static func quoted(_ text: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? encoder.encode(text)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
    }

    private func renderedJSON() -> String {
        func lines(_ value: Value, indent: Int) -> String {
            let pad = String(repeating: " ", count: indent + 2)
            let close = String(repeating: " ", count: indent)
            switch value {
            case .object(let entries):
                let members = entries.map { pad + Self.quoted($0.key) + ": " + lines($0.value, indent: indent + 2) }
                return "{\n" + members.joined(separator: ",\n") + "\n" + close + "}"
            case .list(let items) where items.contains(where: \.isObject):
                return "[\n" + items.map { pad + lines($0, indent: indent + 2) }.joined(separator: ",\n") + "\n"
                    + close + "]"
            default:
                return Self.inline(value)
            }
        }
        return lines(.object(entries), indent: 0) + "\n"
    }
}

extension ImportedConfig.Value {
    fileprivate var isObject: Bool {
        if case .object = self { return true }
        return false
    }
}
