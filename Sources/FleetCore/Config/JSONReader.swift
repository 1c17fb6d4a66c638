import FleetSystem
import Foundation

/// A strict JSON reader for configuration files: RFC 8259 and nothing more.
///
/// Foundation's `JSONSerialization` keeps the last of two equal keys, lets a trailing comma pass and reports
/// some errors by byte offset only. A configuration file must mean exactly one thing, so this reader refuses
/// a duplicate key (naming its key path and the line of the first one), refuses a trailing comma, comments,
/// `NaN` and single quotes, keeps the members in the file's order, and gives every error a line and a column
/// (columns count characters, not bytes).
struct JSONReader {
    /// Deeper nesting is refused rather than risking the stack; no configuration comes near it.
    static let maximumDepth = 128

    private let bytes: [UInt8]
    /// Where the document starts: after a UTF-8 byte order mark, if there is one.
    private let start: Int
    private var index: Int

    private init(_ data: Data) {
        bytes = [UInt8](data)
        start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        index = start
    }

    /// Parses `data` as one JSON document.
    ///
    /// - Throws: `ConfigError` (no key path) reading `invalid JSON: <what> at line L, column C`.
    static func parse(_ data: Data) throws(ConfigError) -> ConfigValue {
        var reader = JSONReader(data)
        reader.skipWhitespace()
        let value = try reader.value(path: "", depth: 0)
        reader.skipWhitespace()
        guard reader.index == reader.bytes.count else {
            throw reader.failure("\(reader.token(at: reader.index)) after the end of the document", at: reader.index)
        }
        return value
    }

    // MARK: - Values

    private mutating func value(path: String, depth: Int) throws(ConfigError) -> ConfigValue {
        guard index < bytes.count else { throw failure("the file ends where a value was expected", at: index) }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(path: path, depth: depth + 1)
        case UInt8(ascii: "["): return try array(path: path, depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default:
            for (word, value) in [("true", ConfigValue.bool(true)), ("false", .bool(false)), ("null", .null)]
            where matchesWord(word) {
                index += word.utf8.count
                return value
            }
            if bytes[index] == UInt8(ascii: "/") { throw failure("comments are not allowed in JSON", at: index) }
            throw failure("expected a value, got \(token(at: index))", at: index)
        }
    }

    private mutating func object(path: String, depth: Int) throws(ConfigError) -> ConfigValue {
        let open = index
        guard depth <= Self.maximumDepth else {
            throw failure("nested deeper than \(Self.maximumDepth) levels", at: open)
        }
        index += 1
        var pairs: [(key: String, value: ConfigValue)] = []
        var firstSeen: [String: Int] = [:]
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(pairs)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw endsInside("the object", openedAt: open) }
            guard bytes[index] == UInt8(ascii: "\"") else {
                throw failure("expected a key in double quotes, got \(token(at: index))", at: index)
            }
            let keyStart = index
            let key = try string()
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            if let first = firstSeen[key] {
                throw failure("duplicate key '\(keyPath)' (first at line \(position(of: first).line))", at: keyStart)
            }
            firstSeen[key] = keyStart
            skipWhitespace()
            guard index < bytes.count else { throw endsInside("the object", openedAt: open) }
            guard bytes[index] == UInt8(ascii: ":") else {
                throw failure("expected ':' after the key '\(keyPath)', got \(token(at: index))", at: index)
            }
            index += 1
            skipWhitespace()
            pairs.append((key, try value(path: keyPath, depth: depth)))
            let closed = try separator(
                closing: UInt8(ascii: "}"),
                inside: ("the object", open),
                element: "member",
                of: path,
                after: "the value of '\(keyPath)'"
            )
            if closed { return .object(pairs) }
        }
    }

    private mutating func array(path: String, depth: Int) throws(ConfigError) -> ConfigValue {
        let open = index
        guard depth <= Self.maximumDepth else {
            throw failure("nested deeper than \(Self.maximumDepth) levels", at: open)
        }
        index += 1
        var items: [ConfigValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw endsInside("the list", openedAt: open) }
            let itemPath = "\(path)[\(items.count)]"
            items.append(try value(path: itemPath, depth: depth))
            let closed = try separator(
                closing: UInt8(ascii: "]"),
                inside: ("the list", open),
                element: "item",
                of: path,
                after: "'\(itemPath)'"
            )
            if closed { return .array(items) }
        }
    }

    /// What follows a member of an object or an item of a list: the closing bracket (consumed; true) or a comma
    /// with another element after it (false). A comma before the closing bracket is refused, as is anything else.
    ///
    /// - Parameters:
    ///   - inside: the container, as errors name it, and where it opened.
    ///   - element: `member` or `item`, for the trailing-comma error; `of` is the container's path.
    ///   - after: what was just read, for the error when neither a comma nor the bracket follows.
    private mutating func separator(
        closing close: UInt8,
        inside container: (name: String, open: Int),
        element: String,
        of path: String,
        after: String
    ) throws(ConfigError) -> Bool {
        skipWhitespace()
        guard index < bytes.count else { throw endsInside(container.name, openedAt: container.open) }
        switch bytes[index] {
        case close:
            index += 1
            return true
        case UInt8(ascii: ","):
            let comma = index
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == close {
                throw failure(
                    "trailing comma after the last \(element) of '\(path.isEmpty ? "top level" : path)'",
                    at: comma
                )
            }
            return false
        default:
            let bracket = Character(Unicode.Scalar(close))
            throw failure("expected ',' or '\(bracket)' after \(after), got \(token(at: index))", at: index)
        }
    }

    /// A string starting at the opening quote; the index ends after the closing one.
    private mutating func string() throws(ConfigError) -> String {
        let open = index
        index += 1
        var text: [UInt8] = []
        while true {
            guard index < bytes.count else { throw endsInside("the string", openedAt: open) }
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let decoded = String(validating: text, as: UTF8.self) else {
                    throw failure("the string is not valid UTF-8", at: open)
                }
                return decoded
            case UInt8(ascii: "\\"):
                try escape(into: &text)
            case 0x0A, 0x0D:
                throw failure("a line break inside a string (is a closing quote missing?)", at: index)
            case 0..<0x20:
                throw failure("control character U+\(hex(byte, digits: 4)) inside a string; escape it", at: index)
            default:
                text.append(byte)
                index += 1
            }
        }
    }

    /// One escape sequence at `\`, appended to `text` as UTF-8.
    private mutating func escape(into text: inout [UInt8]) throws(ConfigError) {
        let backslash = index
        index += 1
        guard index < bytes.count else { throw failure("the file ends inside an escape sequence", at: backslash) }
        let simple: [UInt8: UInt8] = [
            UInt8(ascii: "\""): 0x22, UInt8(ascii: "\\"): 0x5C, UInt8(ascii: "/"): 0x2F, UInt8(ascii: "b"): 0x08,
            UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A, UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09,
        ]
        if let replacement = simple[bytes[index]] {
            text.append(replacement)
            index += 1
            return
        }
        guard bytes[index] == UInt8(ascii: "u") else {
            throw failure("invalid escape \\\(token(at: index).trimmingCharacters(in: ["'"]))", at: backslash)
        }
        index += 1
        var scalar = try hexQuad(escapeAt: backslash)
        if (0xD800...0xDBFF).contains(scalar) {
            let low = index
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
            else { throw failure("a \\u escape for half of a surrogate pair with no second half", at: backslash) }
            index += 2
            let second = try hexQuad(escapeAt: low)
            guard (0xDC00...0xDFFF).contains(second) else {
                throw failure("a \\u escape for half of a surrogate pair with no second half", at: backslash)
            }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (second - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(scalar) {
            throw failure("a \\u escape for half of a surrogate pair with no first half", at: backslash)
        }
        guard let unicode = Unicode.Scalar(scalar) else { throw failure("invalid \\u escape", at: backslash) }
        text.append(contentsOf: Array(String(Character(unicode)).utf8))
    }

    /// The four hex digits after `\u`.
    private mutating func hexQuad(escapeAt backslash: Int) throws(ConfigError) -> UInt32 {
        var scalar: UInt32 = 0
        for _ in 0..<4 {
            guard index < bytes.count, let digit = hexDigit(bytes[index]) else {
                throw failure("a \\u escape needs four hex digits", at: backslash)
            }
            scalar = scalar << 4 | digit
            index += 1
        }
        return scalar
    }

    /// A number in JSON's grammar: an optional minus, no leading zeros, digits after a point and in an exponent.
    private mutating func number() throws(ConfigError) -> ConfigValue {
        let begin = index
        var whole = true
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, isDigit(bytes[index]) else {
            throw failure("a '-' must be followed by digits", at: begin)
        }
        if bytes[index] == UInt8(ascii: "0"), index + 1 < bytes.count, isDigit(bytes[index + 1]) {
            throw failure("a number must not start with 0 (write 7, not 07)", at: begin)
        }
        skipDigits()
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            whole = false
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else {
                throw failure("a decimal point must be followed by digits", at: begin)
            }
            skipDigits()
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            whole = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < bytes.count, isDigit(bytes[index]) else {
                throw failure("an exponent must have digits", at: begin)
            }
            skipDigits()
        }
        let text = String(decoding: bytes[begin..<index], as: UTF8.self)
        if whole, let integer = Int64(text) { return .integer(integer) }
        guard let double = Double(text), double.isFinite else {
            throw failure("the number \(text) is out of range", at: begin)
        }
        return .double(double)
    }

    // MARK: - Characters

    private mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    private mutating func skipDigits() {
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
    }

    private func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    private func hexDigit(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// Whether the literal `word` stands here as a whole word (`true`, not `trueish`).
    private func matchesWord(_ word: String) -> Bool {
        let end = index + word.utf8.count
        guard end <= bytes.count, bytes[index..<end].elementsEqual(word.utf8) else { return false }
        return end == bytes.count || !isWordByte(bytes[end])
    }

    private func isWordByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "_"):
            true
        default: false
        }
    }

    // MARK: - Messages

    /// What a message calls the text at `offset`: `'True'`, `'}'`, `the end of the file`.
    private func token(at offset: Int) -> String {
        guard offset < bytes.count else { return "the end of the file" }
        var end = offset
        while end < bytes.count, end - offset < 24, isWordByte(bytes[end]) { end += 1 }
        if end > offset { return "'\(String(decoding: bytes[offset..<end], as: UTF8.self))'" }
        let byte = bytes[offset]
        if byte < 0x20 || byte == 0x7F { return "control character U+\(hex(byte, digits: 4))" }
        if byte < 0x80 { return "'\(Character(Unicode.Scalar(byte)))'" }
        var iterator = bytes[offset...].makeIterator()
        var decoder = UTF8()
        if case .scalarValue(let scalar) = decoder.decode(&iterator) { return "'\(Character(scalar))'" }
        return "byte 0x\(hex(byte, digits: 2)), which is not UTF-8"
    }

    private func hex(_ byte: UInt8, digits: Int) -> String {
        let text = String(byte, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    /// Line and column (both from 1; columns in characters) of the byte at `offset`.
    private func position(of offset: Int) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for byte in bytes[start..<max(start, min(offset, bytes.count))] {
            if byte == 0x0A {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return (line, column)
    }

    private func failure(_ message: String, at offset: Int) -> ConfigError {
        let (line, column) = position(of: offset)
        return ConfigError(keyPath: nil, "invalid JSON: \(message) at line \(line), column \(column)")
    }

    private func endsInside(_ what: String, openedAt open: Int) -> ConfigError {
        let (line, column) = position(of: open)
        let (endLine, endColumn) = position(of: bytes.count)
        return ConfigError(
            keyPath: nil,
            "invalid JSON: the file ends at line \(endLine), column \(endColumn) inside \(what) opened at line \(line), column \(column)"
        )
    }
}
