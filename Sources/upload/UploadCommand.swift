import ArgumentParser
import FleetCLI
import FleetCore
import FleetLedger
import FleetSystem
import Foundation
import Logging

@main
struct UploadCommand: FleetCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Sync a directory tree (or a vehicle's sources) into S3 and record every file in the ledger.",
        discussion: """
            The configuration names the project, the bucket, the source directories and the key layout; see
            examples/session.json and examples/agent.yaml. Flags and FLEET_* environment variables override
            single keys (FLEET_UPLOAD_WORKERS for upload.workers).

            --dry-run scans, maps every file to its key, compares with the ledger and prints the plan. It
            uploads nothing and records nothing (it does apply pending schema migrations).

            --check verifies that the configuration can work: ledger, endpoint, credentials (and where they
            came from), identity (STS on AWS), and HeadBucket on every destination bucket. It exits 0 only
            when everything passes.

            --join SESSION adds this process to a running session (on this machine, or another one that sees
            the same paths): it claims the session's pending files with FOR UPDATE SKIP LOCKED alongside the
            process that opened it, with the configuration the session runs with (--workers and FLEET_*
            override it), and leaves when the scan is over and nothing is left to claim. The opener closes the
            session once every process's files are recorded. `master status` shows running sessions.

            Exit codes: 0 done, 1 finished with failed files, 2 bad usage or configuration, 3 environment
            unusable (database, credentials, bucket) or the output could not be written (the session stands).
            """,
        version: FleetVersion.description
    )

    /// The Data Uploader's `upload.py` flags.
    static let renamedFlags = [
        "": [
            RenamedFlag("-d", "--source"), RenamedFlag("-b", "--bucket"), RenamedFlag("-p", "--prefix"),
            RenamedFlag("-w", "--workers"), RenamedFlag("--aws-profile", "--profile"),
        ]
    ]

    @OptionGroup var configOptions: ConfigOptions
    @OptionGroup var common: CommonOptions

    @Flag(help: "Print the plan; upload and record nothing.")
    var dryRun = false

    @Flag(help: "Check ledger, credentials and buckets; upload nothing.")
    var check = false

    @Flag(help: "Print the result as JSON on stdout.")
    var json = false

    @Option(help: ArgumentHelp("Join a running session and upload its pending files too.", valueName: "session"))
    var join: Int64?

    func validate() throws {
        if dryRun && check {
            throw ValidationError("--dry-run and --check cannot be combined: run one, then the other")
        }
        guard join != nil else {
            _ = try configOptions.requiredPath()
            return
        }
        if dryRun || check { throw ValidationError("--join cannot be combined with --dry-run or --check") }
        let others = configOptions.flagOverrides.filter { $0.keyPath != "upload.workers" }
        if configOptions.config != nil || !others.isEmpty {
            throw ValidationError(
                "--join uploads with the configuration the session runs with; of its keys only --workers applies"
            )
        }
    }

    func run() throws {
        let logger = common.logger(label: "fleet.upload")
        if let join {
            try joinSession(join, logger: logger)
            return
        }
        let config = try configOptions.load()
        if check {
            try CheckReport.run(config, databaseURL: common.databaseURL, json: json, command: "upload", logger: logger)
            return
        }
        guard dryRun else {
            try upload(config, logger: logger)
            return
        }
        try PlanReport.run(config, databaseURL: common.databaseURL, json: json, command: "upload", logger: logger)
    }

    /// Another process on a running session: exit 0 when every file it took is uploaded, 1 when some failed or
    /// it was interrupted.
    private func joinSession(_ sessionID: Int64, logger: Logger) throws {
        var session = JoinSession(databaseURL: common.databaseURL, logger: logger)
        session.overrides =
            ConfigLoader.environmentOverrides(ProcessInfo.processInfo.environment) + configOptions.flagOverrides
        let state = RunState(giveUpAfter: .infinity)
        let progress = UploadProgress()
        let summary = try UploadProgressDisplay.running(state: state, progress: progress, logger: logger) { _ in
            try session.run(sessionID: sessionID, state: state, progress: progress)
        }
        if json {
            standardOutput(UploadReport.json(summary))
        } else {
            standardError(UploadReport.text(summary))
            standardOutput(summary.sessionID)
        }
        if summary.failedFiles > 0 || summary.interrupted {
            throw ExitCode(ExitStatus.finishedWithFailures.rawValue)
        }
    }

    /// The session itself: exit 0 when everything is uploaded (or already was), 1 when files failed or the run
    /// was interrupted, 3 when the session failed.
    private func upload(_ config: FleetConfig, logger: Logger) throws {
        let state = RunState(
            giveUpAfter: config.resolved.upload.giveUpAfterSeconds,
            transferGrace: config.resolved.upload.stopTimeoutSeconds
        )
        let progress = UploadProgress()
        let summary = try UploadProgressDisplay.running(state: state, progress: progress, logger: logger) { _ in
            try UploadSession(
                config: config,
                configPath: configOptions.config,
                databaseURL: common.databaseURL,
                logger: logger
            ).run(state: state, progress: progress)
        }
        if json {
            standardOutput(UploadReport.json(summary))
        } else {
            standardError(UploadReport.text(summary))
            standardOutput(summary.sessionID)
        }
        switch summary.status {
        case .completed: return
        case .failed: throw ExitCode(ExitStatus.environment.rawValue)
        default: throw ExitCode(ExitStatus.finishedWithFailures.rawValue)
        }
    }
}
