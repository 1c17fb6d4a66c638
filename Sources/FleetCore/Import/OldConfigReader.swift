import FleetSystem
import Foundation

/// Reads values out of a predecessor's parsed configuration, naming the file and the old key in every error.
///
/// Scalars are read the way the predecessors' own loaders (PyYAML, Python's `json`) read them: YAML's `yes`,
/// `on`, `true` are true, numbers may be written as text in YAML, and `~`/`null` mean the key says nothing.
struct OldConfigReader {
    /// The old file, for messages.
    let file: String
    /// Supplies `${HOME}`, `$USER`, `~` and any other variable a path names.
    let environment: [String: String]
    /// Variables a path used, with what they expanded to: reported once each.
    private(set) var expansions: [(variable: String, value: String)] = []

    init(file: String, environment: [String: String]) {
        self.file = file
        self.environment = environment
    }

    func error(_ key: String, _ message: String) -> ConfigError { ConfigError(file: file, keyPath: key, message) }

    /// The members of an object; `nil` when the value is absent or null.
    func object(_ value: ConfigValue?, at key: String) throws(ConfigError) -> [(key: String, value: ConfigValue)]? {
        guard let value, !value.isNull else { return nil }
        guard case .object(let pairs) = value else {
            throw error(key, "expected a section of keys, got \(value.summary)")
        }
        return pairs
    }

    func list(_ value: ConfigValue?, at key: String) throws(ConfigError) -> [ConfigValue]? {
        guard let value, !value.isNull else { return nil }
        guard case .array(let items) = value else { throw error(key, "expected a list, got \(value.summary)") }
        return items
    }

    func text(_ value: ConfigValue?, at key: String) throws(ConfigError) -> String? {
        guard let value, !value.isNull else { return nil }
        switch value {
        case .string(let text), .plain(let text): return text
        case .integer(let number): return String(number)
        default: throw error(key, "expected text, got \(value.summary)")
        }
    }

    func number(_ value: ConfigValue?, at key: String) throws(ConfigError) -> Double? {
        guard let value, !value.isNull else { return nil }
        switch value {
        case .integer(let number): return Double(number)
        case .double(let number): return number
        case .plain(let text):
            if let number = Double(text.replacingOccurrences(of: "_", with: "")), number.isFinite { return number }
        default: break
        }
        throw error(key, "expected a number, got \(value.summary)")
    }

    func bool(_ value: ConfigValue?, at key: String) throws(ConfigError) -> Bool? {
        guard let value, !value.isNull else { return nil }
        switch value {
        case .bool(let flag): return flag
        case .plain(let text), .string(let text):
            switch text.lowercased() {
            case "true", "yes", "on", "1": return true
            case "false", "no", "off", "0": return false
            default: break
            }
        case .integer(let number) where number == 0 || number == 1: return number == 1
        default: break
        }
        throw error(key, "expected true or false, got \(value.summary)")
    }

    /// A time of day as the predecessors wrote it (`9:00` or `09:00`), as `HH:MM`.
    func clockTime(_ value: ConfigValue?, at key: String) throws(ConfigError) -> ClockTime? {
        guard let text = try text(value, at: key) else { return nil }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let hour = Int(parts[0]), let minute = Int(parts[1]), (0..<24).contains(hour),
            (0..<60).contains(minute)
        else { throw error(key, "expected a time of day as HH:MM, got '\(text)'") }
        return ClockTime(hour: hour, minute: minute)
    }

    /// `path` with a leading `~` and every `${NAME}` or `$NAME` replaced from the environment.
    ///
    /// - Throws: `ConfigError` naming `key` when a variable is not set.
    mutating func expandedPath(_ path: String, at key: String) throws(ConfigError) -> String {
        var result = ""
        var rest = Substring(path)
        if rest == "~" || rest.hasPrefix("~/") {
            result = try variable("HOME", at: key)
            rest = rest.dropFirst()
        }
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            rest = rest[rest.index(after: dollar)...]
            let name: Substring
            if rest.hasPrefix("{") {
                guard let close = rest.firstIndex(of: "}") else { throw error(key, "unclosed '${' in '\(path)'") }
                name = rest[rest.index(after: rest.startIndex)..<close]
                rest = rest[rest.index(after: close)...]
            } else {
                let end = rest.firstIndex { !($0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_")) }
                name = rest[..<(end ?? rest.endIndex)]
                rest = rest[(end ?? rest.endIndex)...]
            }
            guard !name.isEmpty else {
                result += "$"
                continue
            }
            result += try variable(String(name), at: key)
        }
        return result + rest
    }

    private mutating func variable(_ name: String, at key: String) throws(ConfigError) -> String {
        guard let value = environment[name], !value.isEmpty else {
            throw error(key, "uses ${\(name)}, which is not set here; set it as the old service had it and run again")
        }
        if !expansions.contains(where: { $0.variable == name }) { expansions.append((name, value)) }
        return value
    }

    /// The notices for the variables paths used.
    var expansionNotices: [String] {
        expansions.map { "${\($0.variable)} in paths is '\($0.value)', from this shell's environment" }
    }
}

extension ClockTime {
    /// The next minute, wrapping from 23:59 to 00:00.
    var nextMinute: ClockTime {
        let minutes = (minutesSinceMidnight + 1) % 1440
        return ClockTime(hour: minutes / 60, minute: minutes % 60)
    }
}
