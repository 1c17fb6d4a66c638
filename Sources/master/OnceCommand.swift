import ArgumentParser
import FleetCLI
import FleetCore
import FleetLedger
import Foundation
import Logging

extension MasterCommand {
    struct Once: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One full cycle: upload, automatic retry rounds, trigger; one exit code.",
            discussion: """
                Runs the upload session the configuration describes (session kind 'once'); when files failed,
                runs retry rounds as retry --auto does (the retry section of the configuration; --no-retry
                leaves them for retry); then, when a URL is configured (trigger.url, or --url) and --no-trigger
                is not given, announces the session as trigger does. Suitable for cron or a systemd timer.
                --dry-run prints the plan as upload --dry-run does and runs nothing. The summary goes to stderr and the session id to stdout; --json prints
                one JSON document instead: the session (as master status --session ID --json shows it), the
                retry rounds, and the trigger result.

                Exit codes: 0 every file uploaded or skipped and the trigger (if any) delivered, 1 files still
                failed (or the run was interrupted, or only_if: complete held the trigger back), 2 bad usage or
                configuration, 3 environment unusable (database, credentials, bucket), the trigger was not
                delivered, or the output could not be written.
                """
        )

        @OptionGroup var configOptions: ConfigOptions
        @OptionGroup var common: CommonOptions

        @Option(help: ArgumentHelp("Override trigger.url.", valueName: "url"))
        var url: String?

        @Flag(help: "No retry rounds: failed files stay failed for retry.")
        var noRetry = false

        @Flag(help: "Announce nothing, whatever trigger.url says.")
        var noTrigger = false

        @Flag(help: "Print the plan as upload --dry-run does; upload, retry and announce nothing.")
        var dryRun = false

        @Flag(help: "Print the result as JSON on stdout.")
        var json = false

        func validate() throws {
            _ = try configOptions.requiredPath()
            if noTrigger, url != nil { throw ValidationError("--no-trigger and --url cannot be combined") }
        }

        func run() throws {
            let logger = common.logger(label: "fleet.master", application: "fleet-master-once")
            let config = try configOptions.load()
            if dryRun {
                let url = common.databaseURL
                try PlanReport.run(config, databaseURL: url, json: json, command: "master once", logger: logger)
                return
            }
            let trigger =
                try !noTrigger && (url != nil || config.trigger?.url != nil)
                ? TriggerOptions(settings: config.trigger, overrides: TriggerSettings(url: url)) : nil

            let state = RunState(
                giveUpAfter: config.resolved.upload.giveUpAfterSeconds,
                transferGrace: config.resolved.upload.stopTimeoutSeconds
            )
            let (upload, retry, delivery) = try UploadProgressDisplay.running(
                state: state,
                progress: UploadProgress(),
                logger: logger
            ) { display in
                try cycle(config, trigger: trigger, state: state, display: display, logger: logger)
            }
            let ledger = try Ledger(url: common.databaseURL, logger: logger)
            guard let record = try ledger.session(upload.sessionID) else {
                throw RetryError.noSuchSession(upload.sessionID)
            }
            if json {
                standardOutput(OnceReport.json(session: record, retry: retry, trigger: delivery))
            } else {
                standardError(OnceReport.text(session: record, retry: retry, trigger: delivery))
                standardOutput(record.id)
            }
            if record.status == .failed { throw ExitCode(ExitStatus.environment.rawValue) }
            if state.stopRequested || record.totals.failedFiles > 0 || record.totals.unfinishedFiles > 0 {
                throw ExitCode(ExitStatus.finishedWithFailures.rawValue)
            }
            switch delivery?.outcome {
            case .failed?: throw ExitCode(ExitStatus.environment.rawValue)
            case .refused?: throw ExitCode(ExitStatus.finishedWithFailures.rawValue)
            default: return
            }
        }

        /// The shared cycle, with this command's report lines between its steps.
        private func cycle(
            _ config: FleetConfig,
            trigger: TriggerOptions?,
            state: RunState,
            display: UploadProgressDisplay,
            logger: Logger
        ) throws -> (UploadSummary, RetrySummary?, TriggerResult?) {
            var session = UploadSession(
                config: config,
                configPath: try configOptions.requiredPath(),
                databaseURL: common.databaseURL,
                logger: logger
            )
            session.kind = "once"
            let json = json
            var cycle = UploadCycle(session: session, trigger: trigger, logger: logger)
            cycle.retries = !noRetry
            cycle.onUploaded = { upload in display.pause { if !json { standardError(UploadReport.text(upload)) } } }
            cycle.onRound = { round in display.pause { if !json { standardError(RetryReport.roundLine(round)) } } }
            cycle.onTrigger = { result in display.pause { if !json { standardError("trigger: " + result.summary) } } }
            let result = try cycle.run(state: state, progress: display.progress)
            return (result.upload, result.retry, result.trigger)
        }
    }
}

/// The closing lines and the JSON document of `master once`.
enum OnceReport {
    static func text(session: SessionRecord, retry: RetrySummary?, trigger: TriggerResult?) -> String {
        let f = Formatting.self
        let totals = session.totals
        var line =
            "Session \(session.id): \(session.status.rawValue): \(f.count(totals.uploadedFiles)) uploaded, "
            + "\(f.count(totals.skippedFiles)) skipped, \(f.count(totals.failedFiles)) failed of "
            + "\(f.count(totals.files)) files"
        if let retry { line += "; \(retry.rounds.count) retry rounds" }
        line += trigger == nil ? "; no trigger" : "; trigger \(trigger!.outcome.rawValue)"
        return line
    }

    static func json(session: SessionRecord, retry: RetrySummary?, trigger: TriggerResult?) -> String {
        struct RetryPart: Encodable {
            var rounds: [RetrySummary.Round]
            var ending: RetrySummary.Ending
            var remaining: Int
        }
        struct Document: Encodable {
            var session: SessionRecord
            var retry: RetryPart?
            var trigger: TriggerResult?
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let document = Document(
            session: session,
            retry: retry.map { RetryPart(rounds: $0.rounds, ending: $0.ending, remaining: $0.remaining) },
            trigger: trigger
        )
        return String(decoding: (try? encoder.encode(document)) ?? Data(), as: UTF8.self)
    }
}
