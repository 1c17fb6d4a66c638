import ArgumentParser
import FleetCore
import FleetSystem
import Foundation

/// The exit codes scripts can act on: 0 done, 1 finished with failed files, 2 bad usage or configuration,
/// 3 environment unusable (database, credentials, bucket) or the output could not be written (a run that
/// would end 0 or 1 but lost what it printed ends 3, since a script cannot trust what it captured; the
/// ledger's record stands).
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
package protocol FleetCommand: ParsableCommand {
    /// The old tools' flags this command still takes under their old names (`RenamedFlag.rewrite`): key `""`
    /// for the command itself, or a subcommand's name.
    static var renamedFlags: [String: [RenamedFlag]] { get }
}

extension FleetCommand {
    package static var renamedFlags: [String: [RenamedFlag]] { [:] }

    /// Parses, runs, and maps every way out to an exit code. ArgumentParser's own usage errors (which exit 64)
    /// become 2; `--help` and `--version` exit 0.
    package static func main() {
        // A reader that went away (`upload … | head -1`) must not kill a run: the write fails with EPIPE
        // instead, and `StandardStreams` reports it.
        signal(SIGPIPE, SIG_IGN)
        let command: any ParsableCommand
        do {
            let arguments = RenamedFlag.rewrite(
                Array(CommandLine.arguments.dropFirst()),
                table: renamedFlags,
                note: standardError
            )
            command = try parseAsRoot(arguments)
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
        // One malloc arena for every thread: memory freed on one arena cannot serve another's, so each arena more
        // keeps MiB the others freed. One (glibc's per-thread caches still serve most small blocks without its
        // lock) held `upload`'s peak at 1,024 files in flight 4-5 MiB under two, at the same files per second.
        FreedMemory.limitArenas(to: 1, environment: ProcessInfo.processInfo.environment)
        let name = configuration.commandName ?? "fleet-upload"
        do {
            try runnable.run()
        } catch let error as ExitCode {
            finish(error.rawValue, name: name)
        } catch  where exitCode(for: error) == .success {
            exit(withError: error)  // --help and --version of a subcommand arrive as errors
        } catch {
            standardError("\(name): \(String(describing: error).collapsedToOneLine)")
            finish(ExitStatus(for: error).rawValue, name: name)
        }
        finish(0, name: name)
    }

    /// Exits with `code`, unless output was lost: a run that would end 0 or 1 but could not write all it
    /// printed (stdout or stderr full, closed, or a reader gone) ends 3, the environment, with the reason on
    /// stderr if stderr still takes it. What the run recorded in the ledger stands.
    private static func finish(_ code: Int32, name: String) -> Never {
        guard let failure = StandardStreams.failure, code == 0 || code == 1 else { exitProcess(code) }
        standardError("\(name): \(failure)")
        exitProcess(ExitStatus.environment.rawValue)
    }
}

private func exitProcess(_ code: Int32) -> Never {
    exit(code)
}
