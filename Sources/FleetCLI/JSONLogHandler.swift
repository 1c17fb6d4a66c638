import FleetSystem
import Foundation
import Logging

/// A swift-log handler that writes one JSON object per event and line, for log shippers (`--log-format json`).
///
/// `{"ts":"2026-11-23T18:00:00.123Z","level":"info","label":"fleet.master","msg":"…","source":"FleetCore",…}`
/// followed by every metadata key as a field of its own, its value flattened to a string. A metadata key that
/// would overwrite one of the five fixed fields is written as `metadata.<key>`. An error attached to the event
/// becomes `error` unless the metadata has one.
package struct JSONLogHandler: LogHandler {
    package var logLevel: Logger.Level = .info
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let write: @Sendable (String) -> Void

    /// The names of the fields every line has, in the order they are written.
    package static let fixedFields = ["ts", "level", "label", "msg", "source"]

    /// - Parameters:
    ///   - label: The logger's label.
    ///   - metadataProvider: Contextual metadata added to every event.
    ///   - write: Receives each line, newline included; default: standard error, one `write` per line.
    package init(
        label: String,
        metadataProvider: Logger.MetadataProvider? = nil,
        write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError
    ) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.write = write
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        if let error = event.error, merged["error"] == nil { merged["error"] = "\(error)" }
        write(
            Self.line(
                time: Date(),
                level: event.level,
                label: label,
                message: event.message.description,
                source: event.source,
                metadata: merged
            )
        )
    }

    /// One event as a JSON line (newline included); metadata fields follow the fixed ones, sorted by key.
    package static func line(
        time: Date,
        level: Logger.Level,
        label: String,
        message: String,
        source: String,
        metadata: Logger.Metadata
    ) -> String {
        var fields = [
            ("ts", Timestamp(time).rfc3339), ("level", level.rawValue), ("label", label), ("msg", message),
            ("source", source),
        ]
        for key in metadata.keys.sorted() {
            let name = fixedFields.contains(key) ? "metadata." + key : key
            fields.append((name, metadata[key]!.description))
        }
        return "{" + fields.map { quoted($0.0) + ":" + quoted($0.1) }.joined(separator: ",") + "}\n"
    }

    /// `text` as a JSON string: `"` and `\` escaped, control characters as `\n`, `\t`… or `\u00XX`; everything
    /// else as UTF-8.
    package static func quoted(_ text: String) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Writes `line` to standard error with one system call, so lines from several threads never interleave.
    package static let standardError: @Sendable (String) -> Void = { line in
        StandardStreams.writeError(line)
    }
}
