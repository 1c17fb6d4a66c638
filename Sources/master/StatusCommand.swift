import ArgumentParser
import FleetCLI
import FleetLedger

extension MasterCommand {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show fleet and session history: recent sessions, failures, projects, devices.",
            discussion: """
                Without --session: the latest sessions (newest first) with their files, bytes, duration and
                throughput; the failed files of those sessions by error class; each project's sessions, uploads
                and failures over the last 30 days with its latest session; every device with its last
                heartbeat, disk use, queue and last upload; and the server's connections to the ledger's
                database by application (pg_stat_activity: whether other roles' connections are active or
                idle shows only to a role granted pg_read_all_stats). Totals of a running session appear when it ends.

                With --session ID: that session's summary (totals counted from its files now, as `upload` and
                `master once` report them), its failed files with their last errors, its retry rounds and its
                trigger calls.

                Times are UTC. --json prints one object instead; for --session it holds the session summary's
                fields plus failed_files, retry_rounds and trigger_events.

                Exit codes: 0 shown; 2 bad usage or no such session, project or device; 3 ledger unreachable or
                the output could not be written.
                """
        )

        @Option(help: ArgumentHelp("Show this session in detail.", valueName: "id"))
        var session: Int64?

        @Option(help: ArgumentHelp("How many recent sessions to list (default 20).", valueName: "n"))
        var limit: Int?

        @Option(help: ArgumentHelp("Only this project's sessions and totals.", valueName: "name"))
        var project: String?

        @Option(help: ArgumentHelp("Only this device's sessions and heartbeat.", valueName: "name"))
        var device: String?

        @Option(help: ArgumentHelp("With --session: how many failed files to list (default 50).", valueName: "n"))
        var failedLimit: Int?

        @Flag(help: "Print one JSON object instead of tables.")
        var json = false

        @OptionGroup var common: CommonOptions

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit: must be at least 1, got \(limit)") }
            if let failedLimit, failedLimit < 0 {
                throw ValidationError("--failed-limit: must be 0 or more, got \(failedLimit)")
            }
            if session != nil, limit != nil || project != nil || device != nil {
                throw ValidationError("--session shows one session: --limit, --project and --device do not apply")
            }
            if session == nil, failedLimit != nil { throw ValidationError("--failed-limit needs --session") }
        }

        func run() throws {
            let logger = common.logger(label: "fleet.master", application: "fleet-master-status")
            let ledger = try Ledger(url: common.databaseURL, logger: logger)
            if let session {
                guard let detail = try ledger.sessionDetail(session, failedLimit: failedLimit ?? 50) else {
                    throw ValidationError("no session \(session) in the ledger \(ledger.location)")
                }
                standardOutput(json ? StatusReport.json(detail) : StatusReport.text(detail))
                return
            }
            let status = try ledger.fleetStatus(StatusFilter(limit: limit ?? 20, project: project, device: device))
            if let project, status.projects.isEmpty {
                throw ValidationError("--project: no project named '\(project)' in the ledger \(ledger.location)")
            }
            if let device, status.devices.isEmpty {
                throw ValidationError("--device: no device named '\(device)' in the ledger \(ledger.location)")
            }
            standardOutput(json ? StatusReport.json(status) : StatusReport.text(status, ledger: ledger.location))
        }
    }
}
