import ArgumentParser
import FleetCLI
import FleetCore
import FleetLedger
import Foundation

extension MasterCommand {
    struct ImportState: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-state",
            abstract: "Bring the old tools' state into the ledger, so nothing is sent twice and no history is lost.",
            discussion: """
                --registry FILE (the vehicle daemon's processed_files.json) with --config AGENT.yaml: each file
                it lists under a source of the configuration is recorded as stored under the key that source
                gives it, so the agent and every session skip it. The registry kept no checksum: such an object
                matches a file with the same key, size and mtime (a file on disk whose size is the registry's and
                whose mtime is the registry's to the millisecond is recorded with its mtime on disk). Files outside
                every source, and files changed since, are skipped and counted; a registry none of whose files is
                under a source is refused.

                --queue FILE (the daemon's queue.json) with --config: each queued file still on disk as it was
                queued is handed to the agent of the configuration's device, which takes it into its queue at its
                next start, however old it is. Files gone or changed are skipped and counted.

                --from-database URL (the Data Uploader's PostgreSQL): its projects (same names), sessions (kind
                'imported'; in_progress becomes interrupted; the old totals kept), files, configurations, and
                every uploaded key as stored (matched on key and size, the old tool kept no mtime), so master
                status and the dashboards show the old sessions and upload of the same directory skips what was
                uploaded.

                Each source is imported in one transaction and only once: running the import again takes nothing
                new. A summary of what was taken and what was skipped (and why) goes to stdout.

                Exit codes: 0 imported; 2 bad usage, a file that cannot be read or is not what the old tool wrote,
                or a database that is not the Data Uploader's; 3 the ledger or the old database unreachable.
                """
        )

        @Option(help: ArgumentHelp("The vehicle daemon's registry (processed_files.json).", valueName: "file"))
        var registry: String?

        @Option(help: ArgumentHelp("The vehicle daemon's queue (queue.json).", valueName: "file"))
        var queue: String?

        @Option(
            name: .customLong("from-database"),
            help: ArgumentHelp("The Data Uploader's PostgreSQL (URL or conninfo).", valueName: "url")
        )
        var fromDatabase: String?

        @OptionGroup var configOptions: ConfigOptions
        @OptionGroup var common: CommonOptions

        func validate() throws {
            guard registry != nil || queue != nil || fromDatabase != nil else {
                throw ValidationError(
                    "nothing to import: give --registry and/or --queue (with --config), or --from-database"
                )
            }
            if registry != nil || queue != nil, configOptions.config == nil {
                throw ValidationError(
                    "--\(registry != nil ? "registry" : "queue") needs --config: the agent configuration whose sources "
                        + "and keys the files belong to"
                )
            }
        }

        func run() throws {
            let logger = common.logger(label: "fleet.master")
            if registry != nil || queue != nil {
                let config = try configOptions.load()
                let summary = try RegistryImport(config: config, databaseURL: common.databaseURL, logger: logger)
                    .run(registry: registry, queue: queue)
                if let registry {
                    standardOutput(
                        "registry \(registry): \(summary.registryEntries) files; \(summary.recorded) recorded as stored, "
                            + "\(summary.alreadyKnown) known already, \(count(summary.registrySkipped)) skipped"
                            + reasons(summary.registrySkipped)
                    )
                }
                if let queue {
                    standardOutput(
                        "queue \(queue): \(summary.queueEntries) files; \(summary.queued) queued for the agent's next "
                            + "start, \(summary.alreadyQueued) queued already, \(count(summary.queueSkipped)) skipped"
                            + reasons(summary.queueSkipped)
                    )
                }
            }
            if let fromDatabase {
                let old = try DataUploaderDatabase(url: fromDatabase)
                let ledger = try Ledger(url: common.databaseURL, logger: logger)
                let summary = try ledger.importDataUploader(from: old)
                let projects = summary.projectsCreated.count + summary.projectsExisting.count
                var line = "Data Uploader database \(old.location): \(projects) projects"
                if !summary.projectsCreated.isEmpty {
                    line += " (new: \(summary.projectsCreated.joined(separator: ", ")))"
                }
                line +=
                    "; \(summary.sessionsImported) sessions imported, \(summary.sessionsAlreadyImported) imported "
                    + "before, \(count(summary.sessionsSkipped)) skipped\(reasons(summary.sessionsSkipped))"
                standardOutput(line)
                let files = summary.filesImported.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
                standardOutput(
                    "  files: \(files.isEmpty ? "none" : files.joined(separator: ", ")) imported; "
                        + "\(summary.storedObjects) keys recorded as stored; \(count(summary.filesSkipped)) skipped"
                        + reasons(summary.filesSkipped)
                )
                standardOutput(
                    "  configurations: \(summary.configsImported) recorded, \(summary.configsKnown) known already, "
                        + "\(count(summary.configsSkipped)) skipped\(reasons(summary.configsSkipped))"
                )
            }
        }

        private func count(_ reasons: [String: Int]) -> Int { reasons.values.reduce(0, +) }

        /// ` (3 outside every source, 1 the file is gone)`, or nothing.
        private func reasons(_ reasons: [String: Int]) -> String {
            guard !reasons.isEmpty else { return "" }
            return " (" + reasons.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: "; ")
                + ")"
        }
    }
}
