import FleetSystem
import Foundation
import Logging

/// The PostgreSQL ledger: projects, devices, sessions and every file, as the commands and Grafana see it.
///
/// One `Ledger` owns one connection and is used by one thread at a time. Opening it applies pending
/// migrations, so every command works against the schema it was built for.
package final class Ledger {
    let connection: PGConnection
    /// Where its warnings go (a lost connection); a connection opened before the session was can take the
    /// session's logger once it exists.
    package var logger: Logger
    /// The migrations this connection applied when it opened (empty when the schema was current).
    package let appliedMigrations: [Migration]

    /// Connects and migrates.
    ///
    /// - Parameters:
    ///   - url: a PostgreSQL URL or conninfo string; empty means libpq's `PG*` environment variables.
    /// - Throws: `LedgerError`.
    package init(url: String, logger: Logger) throws {
        self.logger = logger
        connection = try PGConnection(conninfo: url)
        appliedMigrations = try Migrator(logger: logger).migrate(connection)
    }

    /// Where the ledger is, for messages: `host:port/database as user`.
    package var location: String { connection.location }

    /// The newest applied migration.
    package func schemaVersion() throws -> Int { try Migrator(logger: logger).currentVersion(connection) }

    /// Runs `body`; when it fails because the connection is gone (the server restarted, the network
    /// dropped), connects again, every second until `patience` runs out, and runs it again. Use it for work
    /// that may safely run twice: a transaction that rolled back, a claim, a status update.
    ///
    /// - Throws: `body`'s error when the connection is fine (the statement itself failed), or the last error
    ///   once `patience` is over.
    package func reconnecting<T>(patience: Duration = .seconds(60), _ body: () throws -> T) throws -> T {
        let deadline = ContinuousClock.now + patience
        while true {
            do {
                return try body()
            } catch {
                guard connection.isBroken, ContinuousClock.now < deadline else { throw error }
                logger.warning(
                    "the ledger connection was lost; connecting again",
                    metadata: ["ledger": "\(location)", "error": "\(error)"]
                )
                while true {
                    Thread.sleep(forTimeInterval: 1)
                    do {
                        try connection.reset()
                        break
                    } catch  where ContinuousClock.now < deadline {
                        continue
                    }
                }
            }
        }
    }
}

/// A project as the ledger records it.
package struct ProjectRecord: Sendable, Equatable {
    package var id: Int64
    package var name: String
}

extension Ledger {
    /// The project with this name, if it was ever used.
    package func project(named name: String) throws -> ProjectRecord? {
        let rows = try connection.execute("SELECT id FROM projects WHERE name = \(name)")
        guard rows.rowCount == 1 else { return nil }
        return ProjectRecord(id: try rows.decode(Int64.self, 0, 0, in: "projects"), name: name)
    }
}
