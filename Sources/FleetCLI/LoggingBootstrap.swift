import Foundation
import Logging
import Synchronization

/// Sets up swift-log once per process: human-readable lines on stderr at the chosen level.
package enum LoggingBootstrap {
    private static let done = Mutex(false)

    /// Bootstraps the logging system (first call only) and returns a logger with `label`.
    package static func logger(label: String, level: Logger.Level) -> Logger {
        done.withLock { done in
            guard !done else { return }
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = .trace
                return handler
            }
            done = true
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
