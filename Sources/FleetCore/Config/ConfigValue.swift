import FleetSystem
import Foundation
import Yams

/// A configuration document as parsed, before it is checked against the schema.
///
/// JSON and YAML both land here, so overrides, validation and error messages work the same for both.
/// YAML plain scalars (and override values from the environment or flags) stay `.plain` text until the schema
/// says what type it wants there; quoted YAML and JSON strings are `.string` and never turn into numbers.
package indirect enum ConfigValue: Equatable, Sendable {
    case object([(key: String, value: ConfigValue)])
    case array([ConfigValue])
    case string(String)
    case plain(String)
    case integer(Int64)
    case double(Double)
    case bool(Bool)
    case null

    package static func == (a: ConfigValue, b: ConfigValue) -> Bool {
        switch (a, b) {
        case (.object(let x), .object(let y)): x.map(\.key) == y.map(\.key) && x.map(\.value) == y.map(\.value)
        case (.array(let x), .array(let y)): x == y
        case (.string(let x), .string(let y)), (.plain(let x), .plain(let y)): x == y
        case (.integer(let x), .integer(let y)): x == y
        case (.double(let x), .double(let y)): x == y
        case (.bool(let x), .bool(let y)): x == y
        case (.null, .null): true
        default: false
        }
    }

    /// What a message calls this value: `a string "15"`, `an object`.
    var summary: String {
        switch self {
        case .object: "an object"
        case .array: "a list"
        case .string(let text): "a string \"\(text.prefix(40))\""
        case .plain(let text): "\"\(text.prefix(40))\""
        case .integer(let number): String(number)
        case .double(let number): String(number)
        case .bool(let flag): String(flag)
        case .null: "null"
        }
    }

    var isNull: Bool {
        switch self {
        case .null: true
        case .plain(let text): ["", "~", "null", "Null", "NULL"].contains(text)
        default: false
        }
    }

    subscript(key: String) -> ConfigValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.last(where: { $0.key == key })?.value
    }

    /// Sets `value` at `path`, creating objects on the way.
    mutating func set(_ value: ConfigValue, at path: ArraySlice<String>) {
        guard let head = path.first else {
            self = value
            return
        }
        var pairs: [(key: String, value: ConfigValue)] = []
        if case .object(let existing) = self { pairs = existing }
        if let index = pairs.lastIndex(where: { $0.key == head }) {
            pairs[index].value.set(value, at: path.dropFirst())
        } else {
            var child = ConfigValue.object([])
            child.set(value, at: path.dropFirst())
            pairs.append((head, child))
        }
        self = .object(pairs)
    }
}

// MARK: - Parsing

extension ConfigValue {
    /// Parses a JSON document strictly (`JSONReader`): members in the file's order, a duplicate key or a
    /// trailing comma refused, every error with its line and column.
    package static func parseJSON(_ data: Data) throws(ConfigError) -> ConfigValue {
        try JSONReader.parse(data)
    }

    /// Parses a YAML document (one document; anchors and aliases resolved). Errors carry the line and column.
    package static func parseYAML(_ text: String) throws(ConfigError) -> ConfigValue {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(keyPath: nil, "invalid YAML: \(describe(error))")
        } catch {
            throw ConfigError(keyPath: nil, "invalid YAML: \(error)")
        }
        guard let node else { return .object([]) }
        return try fromYAML(node)
    }

    private static func fromYAML(_ node: Node) throws(ConfigError) -> ConfigValue {
        switch node {
        case .scalar(let scalar):
            return scalar.style == .plain ? .plain(scalar.string) : .string(scalar.string)
        case .mapping(let mapping):
            var pairs: [(key: String, value: ConfigValue)] = []
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw ConfigError(keyPath: nil, "invalid YAML: keys must be plain text (line \(line(of: key)))")
                }
                if pairs.contains(where: { $0.key == keyScalar.string }) {
                    throw ConfigError(
                        keyPath: nil,
                        "invalid YAML: duplicate key '\(keyScalar.string)' (line \(line(of: key)))"
                    )
                }
                pairs.append((keyScalar.string, try fromYAML(value)))
            }
            return .object(pairs)
        case .sequence(let sequence):
            var items: [ConfigValue] = []
            for item in sequence { items.append(try fromYAML(item)) }
            return .array(items)
        case .alias:
            // Yams resolves aliases while composing; an unresolved one has nothing to point at.
            throw ConfigError(keyPath: nil, "invalid YAML: alias without an anchor (line \(line(of: node)))")
        }
    }

    private static func line(of node: Node) -> String { node.mark.map { String($0.line) } ?? "?" }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            let where_ = "line \(mark.line), column \(mark.column)"
            return "\(problem)\(context.map { " \($0.text)" } ?? "") at \(where_)"
        case .composer(let context, let problem, let mark, _):
            return "\(problem)\(context.map { " \($0.text)" } ?? "") at line \(mark.line), column \(mark.column)"
        case .duplicatedKeysInMapping(let duplicates, let context):
            // The context's text is the whole document, so only its mark (the first duplicate) is shown.
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return "duplicate key\(duplicates.count > 1 ? "s" : "") \(keys) (first at line \(context.mark.line))"
        default:
            return String(describing: error).collapsedToOneLine
        }
    }
}
