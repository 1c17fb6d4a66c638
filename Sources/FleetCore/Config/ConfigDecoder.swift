import FleetSystem

/// Decodes a `ConfigValue` into the Codable schema, strictly.
///
/// - Keys are written in snake_case in files (`min_age_seconds`) and camelCase in Swift (`minAgeSeconds`).
/// - A key the schema never asks for is an error ("unknown key"), so typos do not pass silently.
/// - `.plain` text (YAML plain scalars, override values) converts to whatever scalar type the schema wants;
///   JSON and quoted YAML strings do not turn into numbers.
/// - Every error is a `ConfigError` with the dotted key path.
struct ConfigDecoder {
    func decode<T: Decodable>(_ type: T.Type, from value: ConfigValue) throws -> T {
        try ConfigValueDecoder(value: value, codingPath: []).decodeChecked(type)
    }

    static func path(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + snakeCase(key.stringValue)
            }
        }
        return text
    }

    static func snakeCase(_ name: String) -> String {
        var out = ""
        for character in name {
            if character.isUppercase {
                out += "_" + character.lowercased()
            } else {
                out.append(character)
            }
        }
        return out
    }
}

private struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { String(intValue ?? 0) }
    init(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { nil }
}

private final class ConfigValueDecoder: Decoder {
    let value: ConfigValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    /// Keys a keyed container handed out; what is left over afterwards is unknown to the schema.
    var usedKeys: Set<String> = []
    var keyedAccess = false

    init(value: ConfigValue, codingPath: [any CodingKey]) {
        self.value = value
        self.codingPath = codingPath
    }

    var path: String { ConfigDecoder.path(codingPath) }

    func fail(_ message: String) -> ConfigError { ConfigError(keyPath: path, message) }

    /// Decodes `T` here, then refuses keys of this object that `T` did not read.
    func decodeChecked<T: Decodable>(_ type: T.Type) throws -> T {
        let decoded = try T(from: self)
        if keyedAccess, case .object(let pairs) = value {
            if let unknown = pairs.first(where: { !usedKeys.contains($0.key) }) {
                let child = path.isEmpty ? unknown.key : "\(path).\(unknown.key)"
                throw ConfigError(keyPath: child, "unknown key")
            }
        }
        return decoded
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let pairs) = value else { throw fail("expected an object, got \(value.summary)") }
        keyedAccess = true
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, pairs: pairs))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw fail("expected a list, got \(value.summary)") }
        return UnkeyedContainer(decoder: self, items: items)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleContainer(decoder: self) }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: ConfigValueDecoder
    let pairs: [(key: String, value: ConfigValue)]
    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { pairs.compactMap { Key(stringValue: $0.key) } }

    private func lookup(_ key: Key) -> ConfigValue? {
        let name = ConfigDecoder.snakeCase(key.stringValue)
        decoder.usedKeys.insert(name)
        return pairs.last(where: { $0.key == name })?.value
    }

    func contains(_ key: Key) -> Bool { lookup(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { lookup(key)?.isNull ?? true }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        // YAML's `name: null`, `name: ~` and `name:` say "no value", not the text "null".
        guard let value = lookup(key), !value.isNull else {
            throw ConfigError(keyPath: ConfigDecoder.path(codingPath + [key]), "is required")
        }
        return try ConfigValueDecoder(value: value, codingPath: codingPath + [key]).decodeChecked(type)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let value = lookup(key), !value.isNull else { return nil }
        return try ConfigValueDecoder(value: value, codingPath: codingPath + [key]).decodeChecked(type)
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type,
        forKey key: Key
    ) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try ConfigValueDecoder(value: lookup(key) ?? .null, codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try ConfigValueDecoder(value: lookup(key) ?? .null, codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { decoder }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        ConfigValueDecoder(value: lookup(key) ?? .null, codingPath: codingPath + [key])
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: ConfigValueDecoder
    let items: [ConfigValue]
    var currentIndex = 0
    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(decoder: ConfigValueDecoder, items: [ConfigValue]) {
        self.decoder = decoder
        self.items = items
    }

    mutating func next() throws -> ConfigValueDecoder {
        guard !isAtEnd else { throw decoder.fail("list is shorter than expected") }
        defer { currentIndex += 1 }
        return ConfigValueDecoder(
            value: items[currentIndex],
            codingPath: codingPath + [IndexKey(intValue: currentIndex)]
        )
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().decodeChecked(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws
        -> KeyedDecodingContainer<NestedKey>
    { try next().container(keyedBy: type) }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }

    mutating func superDecoder() throws -> any Decoder { try next() }
}

private struct SingleContainer: SingleValueDecodingContainer {
    let decoder: ConfigValueDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }
    var value: ConfigValue { decoder.value }

    func decodeNil() -> Bool { value.isNull }

    func decode(_ type: Bool.Type) throws -> Bool {
        switch value {
        case .bool(let flag): return flag
        case .plain(let text):
            switch text.lowercased() {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            default: break
            }
        default: break
        }
        throw decoder.fail("expected true or false, got \(value.summary)")
    }

    func decode(_ type: String.Type) throws -> String {
        switch value {
        case .string(let text), .plain(let text): return text
        default: throw decoder.fail("expected text, got \(value.summary)")
        }
    }

    func decode(_ type: Double.Type) throws -> Double {
        switch value {
        case .double(let number): return number
        case .integer(let number): return Double(number)
        case .plain(let text):
            if let number = Double(text.replacingOccurrences(of: "_", with: "")), number.isFinite { return number }
        default: break
        }
        throw decoder.fail("expected a number, got \(value.summary)")
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

    func decode(_ type: Int64.Type) throws -> Int64 {
        switch value {
        case .integer(let number): return number
        case .double(let number) where number.rounded() == number && abs(number) < 9e15: return Int64(number)
        case .plain(let text):
            if let number = Int64(text.replacingOccurrences(of: "_", with: "")) { return number }
        default: break
        }
        throw decoder.fail("expected a whole number, got \(value.summary)")
    }

    func decode(_ type: Int.Type) throws -> Int { Int(try decode(Int64.self)) }
    func decode(_ type: Int8.Type) throws -> Int8 { try narrow(try decode(Int64.self)) }
    func decode(_ type: Int16.Type) throws -> Int16 { try narrow(try decode(Int64.self)) }
    func decode(_ type: Int32.Type) throws -> Int32 { try narrow(try decode(Int64.self)) }
    func decode(_ type: UInt.Type) throws -> UInt { try narrow(try decode(Int64.self)) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try narrow(try decode(Int64.self)) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try narrow(try decode(Int64.self)) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try narrow(try decode(Int64.self)) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try narrow(try decode(Int64.self)) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeChecked(type) }

    private func narrow<T: FixedWidthInteger>(_ number: Int64) throws -> T {
        guard let narrowed = T(exactly: number) else { throw decoder.fail("\(number) is out of range") }
        return narrowed
    }
}
