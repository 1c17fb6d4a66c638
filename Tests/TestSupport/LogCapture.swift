import Logging
import Synchronization

/// Collects what a logger logs, for tests whose promise is a log line (a warning that is rate-limited, an
/// error naming the files it concerns). Each entry is the message followed by its metadata as `key=value`.
package final class LogCapture: Sendable {
    package struct Entry: Sendable {
        package var level: Logger.Level
        package var text: String
    }

    private let storage = Mutex<[Entry]>([])

    package init() {}

    package var entries: [Entry] { storage.withLock { $0 } }

    /// A logger at `trace` that writes here.
    package var logger: Logger {
        let capture = self
        var logger = Logger(label: "fleet.test") { _ in CaptureHandler(capture: capture) }
        logger.logLevel = .trace
        return logger
    }

    func append(_ entry: Entry) { storage.withLock { $0.append(entry) } }

    /// Whether an entry at `level` mentions both `message` and `path`.
    package func contains(level: Logger.Level, _ message: String, path: String) -> Bool {
        entries.contains { $0.level == level && $0.text.contains(message) && $0.text.contains(path) }
    }

    package func count(level: Logger.Level, where matches: (String) -> Bool) -> Int {
        entries.filter { $0.level == level && matches($0.text) }.count
    }
}

private struct CaptureHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let details = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        capture.append(LogCapture.Entry(level: event.level, text: "\(event.message) \(details)"))
    }
}
