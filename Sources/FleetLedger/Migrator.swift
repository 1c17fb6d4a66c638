import FleetSystem
import Logging

/// One numbered schema change from `sql/`.
package struct Migration: Sendable {
    package var version: Int
    package var name: String
    package var sql: String

    /// SHA-256 of the file as compiled in; an applied migration whose file later changed is refused.
    package var checksum: String { SHA256.hex(of: Array(sql.utf8)) }

    /// `0001_init.sql`
    package var fileName: String { String(version).leftPadded(to: 4) + "_" + name + ".sql" }
}

extension Migration {
    /// Every migration this binary knows, in order. `sql/NNNN_name.sql` is compiled in by SwiftPM (see
    /// Package.swift); a new file must be listed here too, which a unit test checks.
    package static let all: [Migration] = [
        Migration(version: 1, name: "init", sql: String(decoding: PackageResources._001_init_sql, as: UTF8.self)),
        Migration(
            version: 2,
            name: "claim_order",
            sql: String(decoding: PackageResources._002_claim_order_sql, as: UTF8.self)
        ),
        Migration(version: 3, name: "grafana", sql: String(decoding: PackageResources._003_grafana_sql, as: UTF8.self)),
        Migration(
            version: 4,
            name: "session_workers",
            sql: String(decoding: PackageResources._004_session_workers_sql, as: UTF8.self)
        ),
        Migration(
            version: 5,
            name: "deletion_intents",
            sql: String(decoding: PackageResources._005_deletion_intents_sql, as: UTF8.self)
        ),
        Migration(
            version: 6,
            name: "shared_prefix",
            sql: String(decoding: PackageResources._006_shared_prefix_sql, as: UTF8.self)
        ),
        Migration(
            version: 7,
            name: "trigger_deliveries",
            sql: String(decoding: PackageResources._007_trigger_deliveries_sql, as: UTF8.self)
        ),
        Migration(
            version: 8,
            name: "multipart_aborts",
            sql: String(decoding: PackageResources._008_multipart_aborts_sql, as: UTF8.self)
        ),
        Migration(
            version: 9,
            name: "session_concurrency",
            sql: String(decoding: PackageResources._009_session_concurrency_sql, as: UTF8.self)
        ),
    ]
}

/// Applies pending migrations in order, one transaction each, while holding an advisory lock so that
/// processes starting at the same moment take turns; each applied version is recorded in
/// `schema_migrations`.
package struct Migrator {
    /// An arbitrary constant that names the migration lock among all advisory locks of the database.
    static let advisoryLockKey: Int64 = 0x666C_6565_7475_706C  // "fleetupl"

    package var migrations: [Migration] = Migration.all
    package var logger: Logger

    package init(logger: Logger) { self.logger = logger }

    /// Brings the schema to the newest version this binary knows.
    ///
    /// - Returns: the versions applied now (empty when the schema was current).
    /// - Throws: `LedgerError` `.schemaTooNew` when the database is ahead of this binary, `.migrationFailed`
    ///   when an applied migration's file changed or a migration fails (it is rolled back).
    @discardableResult
    package func migrate(_ connection: PGConnection) throws -> [Migration] {
        try connection.execute("SELECT pg_advisory_lock(\(Migrator.advisoryLockKey))")
        defer { _ = try? connection.execute("SELECT pg_advisory_unlock(\(Migrator.advisoryLockKey))") }

        try connection.executeScript(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        let applied = try appliedChecksums(connection)
        let known = Set(migrations.map(\.version))
        if let newest = applied.keys.max(), !known.contains(newest), newest > (known.max() ?? 0) {
            throw LedgerError(
                .schemaTooNew,
                location: connection.location,
                message: "the schema is at version \(newest), newer than this fleet-upload knows "
                    + "(\(known.max() ?? 0)); upgrade fleet-upload"
            )
        }
        var done: [Migration] = []
        for migration in migrations.sorted(by: { $0.version < $1.version }) {
            if let checksum = applied[migration.version] {
                guard checksum == migration.checksum else {
                    throw LedgerError(
                        .migrationFailed,
                        location: connection.location,
                        message: "\(migration.fileName) was changed after it was applied (checksum differs); "
                            + "add a new migration instead of editing an applied one"
                    )
                }
                continue
            }
            do {
                try connection.transaction {
                    try connection.executeScript(migration.sql)
                    try connection.execute(
                        """
                        INSERT INTO schema_migrations (version, name, checksum)
                        VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                        """
                    )
                }
            } catch let error as LedgerError {
                throw LedgerError(
                    .migrationFailed,
                    location: connection.location,
                    message: "\(migration.fileName): \(error.message)",
                    sqlState: error.sqlState
                )
            }
            logger.info("applied migration", metadata: ["migration": "\(migration.fileName)"])
            done.append(migration)
        }
        return done
    }

    /// The newest applied version, 0 for an empty database.
    package func currentVersion(_ connection: PGConnection) throws -> Int {
        let result = try connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        guard try result.decode(Bool.self, 0, 0, in: "pg_class") else { return 0 }
        return try appliedChecksums(connection).keys.max() ?? 0
    }

    private func appliedChecksums(_ connection: PGConnection) throws -> [Int: String] {
        let rows = try connection.execute("SELECT version, checksum FROM schema_migrations")
        var applied: [Int: String] = [:]
        for row in 0..<rows.rowCount {
            let version = try rows.decode(Int.self, row, 0, in: "schema_migrations")
            applied[version] = try rows.decode(String.self, row, 1, in: "schema_migrations")
        }
        return applied
    }
}
