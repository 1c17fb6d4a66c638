/// A shell-style pattern matched against a file's path relative to its source directory.
///
/// - `*` any run of characters except `/`; `?` one character except `/`; `[a-z]`, `[!0-9]` one character of
///   (or not of) a set; `{wav,flac}` alternatives; `\` escapes the next character.
/// - `**` any run including `/`; `**/` zero or more whole directories (`**/*.wav` matches `a.wav` and `x/y/a.wav`).
/// - A pattern without `/` matches the file name at any depth (`*.wav`); one with `/` matches the whole
///   relative path (`raw/**/*.wav`); a leading `/` only anchors; a trailing `/` means everything below.
///   Each `{…}` alternative counts as a pattern of its own: `{*.wav,raw/*.bag}` finds `.wav` files at any depth.
///
/// Matching works on the name's bytes, so any file name can be matched, valid UTF-8 or not.
package struct GlobPattern: Sendable, Equatable, CustomStringConvertible {
    package let description: String
    private let alternatives: [Alternative]

    /// One brace alternative, compiled.
    private struct Alternative: Sendable, Equatable {
        var tokens: [Token]
        /// No `/` in it (and no leading `/` on the pattern): matched against the file name only.
        var matchesBaseName: Bool
    }

    private enum Token: Sendable, Equatable {
        case literal(UInt8)
        case anyCharacter
        case star
        case globstar
        case globstarDirectories
        case set(ranges: [ClosedRange<UInt32>], negated: Bool)
    }

    /// - Throws: `GlobError` naming what is malformed (an unclosed `[` or `{`, a trailing `\`).
    package init(_ pattern: String) throws(GlobError) {
        description = pattern
        guard !pattern.isEmpty else { throw GlobError(pattern: pattern, "empty pattern") }
        var text = pattern
        if text.hasSuffix("/") { text += "**" }
        let anchored = text.hasPrefix("/")
        if anchored { text.removeFirst() }
        alternatives = try GlobPattern.expandBraces(Array(text.utf8), pattern: pattern).map {
            pieces throws(GlobError) in
            Alternative(
                tokens: try GlobPattern.tokenize(pieces, pattern: pattern),
                matchesBaseName: !anchored && !pieces.contains(GlobPattern.slash)
            )
        }
    }

    /// Whether the relative path (bytes, `/`-separated) matches.
    package func matches(_ relativePath: some Collection<UInt8>) -> Bool {
        let path = Array(relativePath)
        let baseName = path.lastIndex(of: GlobPattern.slash).map { path[($0 + 1)...] } ?? path[...]
        return alternatives.contains { alternative in
            GlobPattern.match(alternative.tokens[...], alternative.matchesBaseName ? baseName : path[...])
        }
    }

    // MARK: - Compiling

    /// `a{b,c{d,e}}f` → `abf`, `acdf`, `acef`.
    private static func expandBraces(_ bytes: [UInt8], pattern: String) throws(GlobError) -> [[UInt8]] {
        var index = 0
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "["):
                index = try closingBracket(bytes, from: index, pattern: pattern) + 1
            case UInt8(ascii: "{"):
                var depth = 0
                var options: [[UInt8]] = []
                var start = index + 1
                var cursor = index
                while true {
                    guard cursor < bytes.count else { throw GlobError(pattern: pattern, "unclosed '{'") }
                    let byte = bytes[cursor]
                    if byte == UInt8(ascii: "\\") {
                        cursor += 2
                        continue
                    }
                    if byte == UInt8(ascii: "{") { depth += 1 }
                    if byte == UInt8(ascii: "}") {
                        depth -= 1
                        if depth == 0 {
                            options.append(Array(bytes[start..<cursor]))
                            break
                        }
                    }
                    if byte == UInt8(ascii: ","), depth == 1 {
                        options.append(Array(bytes[start..<cursor]))
                        start = cursor + 1
                    }
                    cursor += 1
                }
                let head = Array(bytes[..<index])
                let tail = Array(bytes[(cursor + 1)...])
                var out: [[UInt8]] = []
                for option in options {
                    out += try expandBraces(head + option + tail, pattern: pattern)
                }
                return out
            case UInt8(ascii: "}"):
                throw GlobError(pattern: pattern, "'}' without '{'")
            default: index += 1
            }
        }
        return [bytes]
    }

    private static func closingBracket(_ bytes: [UInt8], from open: Int, pattern: String) throws(GlobError) -> Int {
        var index = open + 1
        if index < bytes.count, bytes[index] == UInt8(ascii: "!") || bytes[index] == UInt8(ascii: "^") { index += 1 }
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1 }
        while index < bytes.count, bytes[index] != UInt8(ascii: "]") { index += 1 }
        guard index < bytes.count else { throw GlobError(pattern: pattern, "unclosed '['") }
        return index
    }

    private static func tokenize(_ bytes: [UInt8], pattern: String) throws(GlobError) -> [Token] {
        var tokens: [Token] = []
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\\"):
                guard index + 1 < bytes.count else { throw GlobError(pattern: pattern, "trailing '\\'") }
                tokens.append(.literal(bytes[index + 1]))
                index += 2
            case UInt8(ascii: "?"):
                tokens.append(.anyCharacter)
                index += 1
            case UInt8(ascii: "*"):
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "*") {
                    index += 2
                    while index < bytes.count, bytes[index] == UInt8(ascii: "*") { index += 1 }
                    if index < bytes.count, bytes[index] == UInt8(ascii: "/") {
                        tokens.append(.globstarDirectories)
                        index += 1
                    } else {
                        tokens.append(.globstar)
                    }
                } else {
                    tokens.append(.star)
                    index += 1
                }
            case UInt8(ascii: "["):
                let close = try closingBracket(bytes, from: index, pattern: pattern)
                var body = Array(bytes[(index + 1)..<close])
                var negated = false
                if let first = body.first, first == UInt8(ascii: "!") || first == UInt8(ascii: "^") {
                    negated = true
                    body.removeFirst()
                }
                let scalars = Array(String(decoding: body, as: UTF8.self).unicodeScalars.map(\.value))
                var ranges: [ClosedRange<UInt32>] = []
                var cursor = 0
                while cursor < scalars.count {
                    if cursor + 2 < scalars.count, scalars[cursor + 1] == UInt32(UInt8(ascii: "-")) {
                        guard scalars[cursor] <= scalars[cursor + 2] else {
                            throw GlobError(pattern: pattern, "reversed range in '[…]'")
                        }
                        ranges.append(scalars[cursor]...scalars[cursor + 2])
                        cursor += 3
                    } else {
                        ranges.append(scalars[cursor]...scalars[cursor])
                        cursor += 1
                    }
                }
                tokens.append(.set(ranges: ranges, negated: negated))
                index = close + 1
            default:
                tokens.append(.literal(byte))
                index += 1
            }
        }
        return tokens
    }

    // MARK: - Matching

    private static let slash = UInt8(ascii: "/")

    private static func match(_ tokens: ArraySlice<Token>, _ subject: ArraySlice<UInt8>) -> Bool {
        var tokens = tokens
        var subject = subject
        while let token = tokens.first {
            tokens = tokens.dropFirst()
            switch token {
            case .literal(let byte):
                guard subject.first == byte else { return false }
                subject = subject.dropFirst()
            case .anyCharacter:
                guard let first = subject.first, first != slash else { return false }
                subject = subject.dropFirst(scalarLength(subject))
            case .set(let ranges, let negated):
                guard let first = subject.first, first != slash else { return false }
                let length = scalarLength(subject)
                let value = scalarValue(subject.prefix(length))
                guard ranges.contains(where: { $0.contains(value) }) != negated else { return false }
                subject = subject.dropFirst(length)
            case .star:
                // Stars step over whole characters, so what follows never starts inside one.
                var rest = subject
                while true {
                    if match(tokens, rest) { return true }
                    guard let first = rest.first, first != slash else { return false }
                    rest = rest.dropFirst(scalarLength(rest))
                }
            case .globstar:
                var rest = subject
                while true {
                    if match(tokens, rest) { return true }
                    guard !rest.isEmpty else { return false }
                    rest = rest.dropFirst(scalarLength(rest))
                }
            case .globstarDirectories:
                if match(tokens, subject) { return true }
                var rest = subject
                while let slashIndex = rest.firstIndex(of: slash) {
                    rest = subject[(slashIndex + 1)...]
                    if match(tokens, rest) { return true }
                }
                return false
            }
        }
        return subject.isEmpty
    }

    /// The length of the UTF-8 sequence at the start (1 for an invalid byte).
    private static func scalarLength(_ bytes: ArraySlice<UInt8>) -> Int {
        guard let lead = bytes.first else { return 0 }
        let length = lead < 0x80 ? 1 : lead >> 5 == 0b110 ? 2 : lead >> 4 == 0b1110 ? 3 : lead >> 3 == 0b11110 ? 4 : 1
        guard length <= bytes.count else { return 1 }
        for byte in bytes.dropFirst().prefix(length - 1) where byte >> 6 != 0b10 { return 1 }
        return length
    }

    private static func scalarValue(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        if bytes.count == 1 { return UInt32(bytes.first!) }
        return String(decoding: bytes, as: UTF8.self).unicodeScalars.first?.value ?? 0xFFFD
    }
}

package struct GlobError: Error, Sendable, Equatable, CustomStringConvertible {
    package var pattern: String
    package var reason: String
    init(pattern: String, _ reason: String) {
        self.pattern = pattern
        self.reason = reason
    }
    package var description: String { "bad pattern '\(pattern)': \(reason)" }
}

/// Include and exclude patterns together: a path passes if it matches any include (or there are none) and
/// no exclude.
package struct GlobFilter: Sendable {
    package var include: [GlobPattern]
    package var exclude: [GlobPattern]

    package init(include: [GlobPattern] = [], exclude: [GlobPattern] = []) {
        self.include = include
        self.exclude = exclude
    }

    package func admits(_ relativePath: [UInt8]) -> Bool {
        if !include.isEmpty, !include.contains(where: { $0.matches(relativePath) }) { return false }
        return !exclude.contains { $0.matches(relativePath) }
    }
}
