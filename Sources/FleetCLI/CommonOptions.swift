import ArgumentParser
import FleetSystem
import Foundation
import Logging

/// The options every command takes.
package struct CommonOptions: ParsableArguments {
    @Option(
        name: .customLong("database"),
        help: ArgumentHelp(
            "PostgreSQL URL or conninfo of the ledger.",
            discussion: "Default: $DATABASE_URL, else libpq's PG* environment variables (PGHOST, PGPORT, …).",
            valueName: "url"
        )
    )
    package var databaseOption: String?

    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    package var logLevel: Logger.Level = .notice

    @Option(
        help: ArgumentHelp(
            "text or json: one JSON object per line, with every metadata key as a field.",
            valueName: "format"
        )
    )
    package var logFormat: LogFormat = .text

    package init() {}

    /// Warns (on stderr, once, before anything runs) when `--database` holds a password: a command line is
    /// visible to every user of the machine in `ps`. The password itself is never printed.
    package func validate() throws {
        guard let databaseOption, (try? PGConnectionString(databaseOption))?.hasPassword == true else { return }
        standardError(
            "warning: --database holds a password, which other users of this machine can read in ps; "
                + "put the URL in DATABASE_URL or the password in a password file (PGPASSFILE) instead"
        )
    }

    /// Bootstraps logging with `--log-level` and `--log-format` (first call only) and returns a logger; names
    /// the command's ledger connections for `pg_stat_activity` too.
    ///
    /// - Parameters:
    ///   - label: The logger's label, `fleet.upload`.
    ///   - application: The connections' `application_name` (unless the URL or `PGAPPNAME` sets one); by default
    ///     the label with dashes, `fleet-upload`.
    package func logger(label: String, application: String? = nil) -> Logger {
        PGConnection.applicationName = application ?? label.replacingOccurrences(of: ".", with: "-")
        return LoggingBootstrap.logger(label: label, level: logLevel, format: logFormat)
    }

    /// `--database`, else `DATABASE_URL`, else empty (libpq reads `PG*`).
    package var databaseURL: String {
        databaseOption ?? ProcessInfo.processInfo.environment["DATABASE_URL"] ?? ""
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension LogFormat: ExpressibleByArgument {}
