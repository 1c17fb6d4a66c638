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
            name: "imported_state",
            sql: String(decoding: PackageResources._009_imported_state_sql, as: UTF8.self)
        ),
        Migration(
            version: 10,
            name: "fleet_roles",
            sql: String(decoding: PackageResources._010_fleet_roles_sql, as: UTF8.self)
        ),
        Migration(
            version: 11,
            name: "session_concurrency",
            sql: String(decoding: PackageResources._011_session_concurrency_sql, as: UTF8.self)
        ),
        Migration(
            version: 12,
            name: "compression",
            sql: String(decoding: PackageResources._012_compression_sql, as: UTF8.self)
        ),
        Migration(
            version: 13,
            name: "ledger_write_path",
            sql: String(decoding: PackageResources._013_ledger_write_path_sql, as: UTF8.self)
        ),
        Migration(
            version: 14,
            name: "object_records",
            sql: String(decoding: PackageResources._014_object_records_sql, as: UTF8.self)
        ),
        Migration(
            version: 15,
            name: "heartbeat_index",
            sql: String(decoding: PackageResources._015_heartbeat_index_sql, as: UTF8.self)
        ),
        Migration(
            version: 16,
            name: "no_jit",
            sql: String(decoding: PackageResources._016_no_jit_sql, as: UTF8.self)
        ),
        Migration(
            version: 17,
            name: "row_checks",
            sql: String(decoding: PackageResources._017_row_checks_sql, as: UTF8.self)
        ),
        Migration(
            version: 18,
            name: "claim_ranges",
            sql: String(decoding: PackageResources._018_claim_ranges_sql, as: UTF8.self)
        ),
        Migration(
            version: 19,
            name: "less_cpu_per_file",
            sql: String(decoding: PackageResources._019_less_cpu_per_file_sql, as: UTF8.self)
        ),
        Migration(
            version: 20,
            name: "work_per_statement",
            sql: String(decoding: PackageResources._020_work_per_statement_sql, as: UTF8.self)
        ),
    ]
}

/// Applies pending migrations in order, one transaction each, every one holding a transaction-scoped advisory
/// lock (`pg_advisory_xact_lock`) so that processes starting at the same moment take turns; each applied version
/// is recorded in `schema_migrations`.
///
/// Nothing outlives a transaction: the lock ends with the transaction that took it, so it works unchanged behind a
/// pooler in transaction mode, where a session-scoped lock could be taken on one server connection and released
/// on another (or never). When the schema is current, as on nearly every connect, no lock is taken at all.
package struct Migrator {
    /// An arbitrary constant that names the migration lock among all advisory locks of the database.
    static let advisoryLockKey: Int64 = 0x666C_6565_7475_706C  // "fleetupl"

    package var migrations: [Migration] = Migration.all
    package var logger: Logger

    package init(logger: Logger) { self.logger = logger }

    /// Brings the schema to the newest version this binary knows.
    ///
    /// A role that may not change the schema (a vehicle's `fleet_device` login) opens a current ledger like any
    /// other; a pending migration it is refused ends with a message that an admin applies it.
    ///
    /// - Returns: the versions applied now (empty when the schema was current).
    /// - Throws: `LedgerError` `.schemaTooNew` when the database is ahead of this binary, `.migrationFailed`
    ///   when an applied migration's file changed, a migration fails (it is rolled back) or the role may not
    ///   apply it.
    @discardableResult
    package func migrate(_ connection: PGConnection) throws -> [Migration] {
        let known = migrations.sorted(by: { $0.version < $1.version })
        let before = try appliedChecksumsIfAny(connection)
        let waiting = try pending(known, applied: before, connection)
        guard let first = waiting.first else { return [] }
        var done: [Migration] = []
        for migration in known {
            let applied: Bool
            do {
                applied = try connection.transaction {
                    try connection.execute("SELECT pg_advisory_xact_lock(\(Migrator.advisoryLockKey))")
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
                    // Read again under the lock: another process may have applied it meanwhile.
                    let current = try appliedChecksums(connection)
                    _ = try pending(known, applied: current, connection)
                    guard current[migration.version] == nil else { return false }
                    try connection.executeScript(migration.sql)
                    try connection.execute(
                        """
                        INSERT INTO schema_migrations (version, name, checksum)
                        VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                        """
                    )
                    return true
                }
            } catch let error as LedgerError where error.sqlState == "42501" {
                throw LedgerError(
                    .migrationFailed,
                    location: connection.location,
                    message: "the schema is at version \(before.keys.max() ?? 0) and this fleet-upload needs "
                        + "\(known.last?.version ?? 0), but this role may not apply \(first.fileName) "
                        + "(\(error.message)); an admin applies it with `master migrate`",
                    sqlState: error.sqlState
                )
            } catch let error as LedgerError where error.kind == .queryFailed {
                throw LedgerError(
                    .migrationFailed,
                    location: connection.location,
                    message: "\(migration.fileName): \(error.message)",
                    sqlState: error.sqlState
                )
            }
            guard applied else { continue }
            logger.info("applied migration", metadata: ["migration": "\(migration.fileName)"])
            done.append(migration)
        }
        return done
    }

    /// The known migrations not applied yet, after checking that the database is not ahead of this binary and
    /// that no applied migration changed since.
    private func pending(_ known: [Migration], applied: [Int: String], _ connection: PGConnection) throws -> [Migration]
    {
        let versions = Set(known.map(\.version))
        if let newest = applied.keys.max(), !versions.contains(newest), newest > (versions.max() ?? 0) {
            throw LedgerError(
                .schemaTooNew,
                location: connection.location,
                message: "the schema is at version \(newest), newer than this fleet-upload knows "
                    + "(\(versions.max() ?? 0)); upgrade fleet-upload"
            )
        }
        for migration in known {
            if let checksum = applied[migration.version], checksum != migration.checksum {
                throw LedgerError(
                    .migrationFailed,
                    location: connection.location,
                    message: "\(migration.fileName) was changed after it was applied (checksum differs); "
                        + "add a new migration instead of editing an applied one"
                )
            }
        }
        return known.filter { applied[$0.version] == nil }
    }

    /// What `schema_migrations` records; empty when the table is not there yet (a new database).
    private func appliedChecksumsIfAny(_ connection: PGConnection) throws -> [Int: String] {
        let result = try connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        guard try result.decode(Bool.self, 0, 0, in: "pg_class") else { return [:] }
        return try appliedChecksums(connection)
    }

    /// The newest applied version, 0 for an empty database.
    package func currentVersion(_ connection: PGConnection) throws -> Int {
        try appliedChecksumsIfAny(connection).keys.max() ?? 0
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
