import ArgumentParser
import FleetCLI
import FleetCore
import FleetSystem
import Foundation
import Logging

@main
struct RetryCommand: FleetCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Re-attempt a session's failed files, once or in automatic rounds.",
        discussion: """
            Takes the session's failed files (and files an interrupted run never tried) and uploads them again
            in the same parallel pool as upload, with the configuration the session ran with (from the
            ledger; --workers and FLEET_* variables override it). Every attempt is counted in the ledger.
            Files are claimed with FOR UPDATE SKIP LOCKED, so two retries of one session never upload the
            same file. A file that no longer exists is recorded as a permanent failure (file_missing).

            --auto runs rounds until every file is uploaded, the rounds run out (retry.rounds, default 5), or
            every remaining file has been attempted retry.max_file_attempts times (default 100); rounds are
            separated by exponential backoff with full jitter (retry.round_backoff_base_seconds, default 30,
            up to retry.round_backoff_cap_seconds, default 900).

            The session's status follows: completed once no file is left failed. The summary goes to stderr,
            the session id to stdout (--json: the summary as JSON on stdout).

            Exit codes: 0 nothing left failed, 1 files still failed or interrupted, 2 bad usage or unknown
            session, 3 environment unusable (database, credentials, bucket) or the output could not be written.
            """,
        version: FleetVersion.description
    )

    /// The Data Uploader's `retry.py` flags.
    static let renamedFlags = [
        "": [
            RenamedFlag("--session-id", "--session"), RenamedFlag("--auto-retry", "--auto"),
            RenamedFlag("--max-rounds", "--rounds"), RenamedFlag("--max-attempts", "--max-file-attempts"),
            RenamedFlag("--delay", "--round-backoff-base"),
        ]
    ]

    @Option(help: ArgumentHelp("The session to retry.", valueName: "id"))
    var session: Int64

    @Flag(help: "Run rounds with backoff until done, out of rounds, or out of attempts.")
    var auto = false

    @Flag(help: "Also retry permanent failures (not invalid or duplicate keys, nor another project's keys).")
    var includePermanent = false

    @Option(help: ArgumentHelp("With --auto: rounds at most (default retry.rounds, 5).", valueName: "n"))
    var rounds: Int?

    /// Taken as text and refused, when out of range, naming the key (as `--workers`).
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "With --auto: attempts in all after which a file is left failed (override retry.max_file_attempts).",
            valueName: "n"
        )
    )
    var maxFileAttempts: String?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "With --auto: the first wait between rounds, up to this long (override retry.round_backoff_base_seconds).",
            valueName: "seconds"
        )
    )
    var roundBackoffBase: String?

    /// Taken as it is, even when it starts with `-`, so `--workers -1` is refused naming the key.
    @Option(parsing: .unconditional, help: ArgumentHelp("Override upload.workers (auto or 1…1024).", valueName: "n"))
    var workers: String?

    @Flag(help: "Print the result as JSON on stdout.")
    var json = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if let rounds, !(1...1000).contains(rounds) { throw ValidationError("--rounds must be 1…1000, got \(rounds)") }
        for (flag, given) in [
            ("--rounds", rounds != nil), ("--max-file-attempts", maxFileAttempts != nil),
            ("--round-backoff-base", roundBackoffBase != nil),
        ] where given && !auto {
            throw ValidationError("\(flag) applies with --auto")
        }
    }

    func run() throws {
        let logger = common.logger(label: "fleet.retry")
        var retry = RetrySession(databaseURL: common.databaseURL, logger: logger)
        let flags = [
            ("upload.workers", "--workers", workers),
            ("retry.max_file_attempts", "--max-file-attempts", maxFileAttempts),
            ("retry.round_backoff_base_seconds", "--round-backoff-base", roundBackoffBase),
        ]
        retry.overrides =
            ConfigLoader.environmentOverrides(ProcessInfo.processInfo.environment)
            + flags.compactMap { key, flag, value in value.map { ConfigOverride(keyPath: key, value: $0, origin: flag) }
            }
        var options = RetryOptions()
        options.auto = auto
        options.includePermanent = includePermanent
        options.rounds = rounds

        // Carries stop requests only: every round has a give-up clock of its own.
        let state = RunState(giveUpAfter: .infinity)
        let progress = UploadProgress()
        let summary = try UploadProgressDisplay.running(state: state, progress: progress, logger: logger) { display in
            retry.onRound = { round in display.pause { standardError(RetryReport.roundLine(round)) } }
            return try retry.run(sessionID: session, options: options, state: state, progress: progress)
        }
        if json {
            standardOutput(RetryReport.json(summary))
        } else {
            standardError(RetryReport.text(summary))
            standardOutput(summary.session.id)
        }
        // Files another retry of the session still holds are its business, not a failure of this one.
        if summary.ending == .interrupted || summary.session.totals.failedFiles > 0 || summary.remaining > 0 {
            throw ExitCode(ExitStatus.finishedWithFailures.rawValue)
        }
    }
}
