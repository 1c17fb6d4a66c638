import ArgumentParser
import FleetCLI
import FleetCore
import FleetSystem
import Foundation
import Logging

extension MasterCommand {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The vehicle agent: watch the sources, upload stable files on schedule, keep the disk clear.",
            discussion: """
                Runs until SIGTERM or SIGINT. Every configured source is watched (inotify, with a periodic rescan
                as a safety net); a file is ready once its size and mtime have not changed for
                agent.stability_seconds (default 60). On start the files already on disk that are at most
                scan.max_age_days old (default 3) are queued; those modified more than two minutes ago need no
                stability wait.

                When files go up: at start (agent.upload_on_start), on agent.schedule (daily_at HH:MM, or
                every_minutes / every_hours from midnight), and at once when a file becomes ready inside
                agent.operational_hours (the whole queue with agent.batch_upload, else only that file; no
                operational hours means at any time). Each upload is a ledger session (kind startup, scheduled
                or immediate) followed by retry rounds (retry section) and the trigger (trigger section).

                The deletion section's policies run as configured (after_upload, age, emergency), and only for
                files the ledger records as uploaded with a verified checksum unless include_unuploaded says
                otherwise; every deletion is recorded in local_deletions. A heartbeat updates the device's row
                every agent.heartbeat_seconds.

                SIGHUP reloads the configuration (an invalid file is logged and the running one kept). SIGTERM
                and SIGINT let in-flight uploads finish for up to agent.stop_timeout_seconds (default 20); what
                is still in flight then is checked in the bucket at the next start. With NOTIFY_SOCKET set
                (systemd Type=notify) the agent reports READY, RELOADING and STOPPING.

                --check validates the configuration and checks the ledger, credentials and bucket, then exits.

                Exit codes: 0 stopped cleanly, 2 bad usage or configuration, 3 environment unusable (--check).
                """
        )

        @OptionGroup var configOptions: ConfigOptions
        @OptionGroup var common: CommonOptions

        @Flag(help: "Check the configuration, ledger, credentials and bucket; then exit.")
        var check = false

        func validate() throws { _ = try configOptions.requiredPath() }

        func run() throws {
            let logger = common.logger(label: "fleet.master", application: "fleet-master-run")
            let config = try configOptions.load()
            if check {
                try CheckReport.run(config, databaseURL: common.databaseURL, command: "master run", logger: logger)
                return
            }
            let control = AgentControl()
            let signals = SignalWatcher(signals: [SIGINT, SIGTERM, SIGHUP]) { number in
                if number == SIGHUP { control.requestReload() } else { control.requestStop() }
            }
            let agent = try Agent(
                configPath: try configOptions.requiredPath(),
                overrides: ConfigLoader.environmentOverrides(ProcessInfo.processInfo.environment)
                    + configOptions.flagOverrides,
                config: config,
                databaseURL: common.databaseURL,
                control: control,
                logger: logger
            )
            let notifier = SystemdNotifier()
            agent.onNotify = { notifier.notify($0) }
            withExtendedLifetime(signals) { agent.run() }
        }
    }
}
