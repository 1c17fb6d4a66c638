import ArgumentParser
import FleetCore
import FleetSystem
import Foundation

/// The exit codes scripts can act on: 0 done, 1 finished with failed files, 2 bad usage or configuration,
/// 3 environment unusable (database, credentials, bucket).
package enum ExitStatus: Int32 {
    /// Everything was done.
    case success = 0
    /// The run finished, but some files failed.
    case finishedWithFailures = 1
    /// Bad usage or configuration.
    case usage = 2
    /// The environment is unusable: database, credentials, bucket.
    case environment = 3

    /// Which code an error ends the process with.
    package init(for error: any Error) {
        switch error {
        case is ConfigError, is ValidationError, is RetryError, is JoinError: self = .usage
        case is LedgerError, is ScanError: self = .environment
        default: self = .environment
        }
    }
}

/// A command of fleet-upload: exits with `ExitStatus` codes and a one-line reason on stderr.
package protocol FleetCommand: ParsableCommand {}

extension FleetCommand {
    /// Parses, runs, and maps every way out to an exit code. ArgumentParser's own usage errors (which exit 64)
    /// become 2; `--help` and `--version` exit 0.
    package static func main() {
        let command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            if exitCode(for: error) == .validationFailure {
                let message = fullMessage(for: error).split(separator: "\n").first.map(String.init) ?? "bad usage"
                standardError("\(message)\nSee '\(configuration.commandName ?? "command") --help'.")
                exitProcess(ExitStatus.usage.rawValue)
            }
            exit(withError: error)
        }
        var runnable = command
        Curl.globalInit()  // before any worker thread starts
        do {
            try runnable.run()
        } catch let error as ExitCode {
            exit(withError: error)
        } catch  where exitCode(for: error) == .success {
            exit(withError: error)  // --help and --version of a subcommand arrive as errors
        } catch {
            let name = configuration.commandName ?? "fleet-upload"
            standardError("\(name): \(String(describing: error).collapsedToOneLine)")
            exitProcess(ExitStatus(for: error).rawValue)
        }
        exitProcess(0)
    }
}

/// Writes one line to stderr (never through C's `stderr` global, which Swift 6 rejects).
package func standardError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

private func exitProcess(_ code: Int32) -> Never {
    exit(code)
}
