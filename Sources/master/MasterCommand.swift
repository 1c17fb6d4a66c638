import ArgumentParser
import FleetCLI
import FleetLedger
import FleetSystem

@main
struct MasterCommand: FleetCommand {
    static let configuration = CommandConfiguration(
        commandName: "master",
        abstract:
            "Orchestrate fleet-upload: one full cycle, the vehicle agent, fleet and session history, schema migrations, device logins.",
        version: FleetVersion.description,
        subcommands: [Once.self, Run.self, Status.self, Migrate.self, ImportConfig.self, ImportState.self, Device.self]
    )

    /// The Data Uploader's `master.py` flags (for `once`) and the vehicle daemon's (for `run`).
    static let renamedFlags = [
        "once": [
            RenamedFlag("-e", "--url"), RenamedFlag("--skip-retry", "--no-retry"),
            RenamedFlag("--skip-endpoint", "--no-trigger"),
        ],
        "run": [RenamedFlag("--test-config", "--check")],
    ]
}

extension MasterCommand {
    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply pending ledger migrations and print the schema version.",
            discussion: """
                Every command applies pending migrations when it starts; this one does only that. Migrations
                run one transaction each under a transaction-scoped advisory lock, so several processes may start
                at once (also behind PgBouncer in transaction pooling).
                """
        )

        @OptionGroup var common: CommonOptions

        func run() throws {
            let logger = common.logger(label: "fleet.master", application: "fleet-master-migrate")
            let ledger = try Ledger(url: common.databaseURL, logger: logger)
            let version = try ledger.schemaVersion()
            let applied = ledger.appliedMigrations.map(\.fileName)
            let what = applied.isEmpty ? "already up to date" : "applied \(applied.joined(separator: ", "))"
            standardOutput("ledger \(ledger.location): schema version \(version) (\(what))")
        }
    }
}
