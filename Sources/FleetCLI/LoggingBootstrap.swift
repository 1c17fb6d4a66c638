import Foundation
import Logging
import Synchronization

/// How log events are written to standard error.
package enum LogFormat: String, CaseIterable, Sendable {
    /// swift-log's `StreamLogHandler` lines, for people.
    case text
    /// One JSON object per line (`JSONLogHandler`), for log shippers.
    case json
}

/// Sets up swift-log once per process: lines on stderr at the chosen level, as text or as JSON.
package enum LoggingBootstrap {
    private static let done = Mutex(false)

    /// Bootstraps the logging system (first call only) and returns a logger with `label`.
    package static func logger(label: String, level: Logger.Level, format: LogFormat = .text) -> Logger {
        done.withLock { done in
            guard !done else { return }
            LoggingSystem.bootstrap { label in
                switch format {
                case .text:
                    var handler = StreamLogHandler.standardError(label: label)
                    handler.logLevel = .trace
                    return handler
                case .json:
                    var handler = JSONLogHandler(label: label)
                    handler.logLevel = .trace
                    return handler
                }
            }
            done = true
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
