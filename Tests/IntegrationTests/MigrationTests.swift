import FleetSystem
import FleetTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@testable import FleetCore
@testable import FleetLedger

struct MigrationTests {
    @Test func freshDatabaseGetsEveryTableAndRecordsTheVersion() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        let ledger = try database.ledger()
        #expect(try ledger.schemaVersion() == Migration.all.last!.version)
        #expect(ledger.appliedMigrations.map(\.version) == Migration.all.map(\.version))
        let tables = try database.connect().execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        )
        let names = Set((0..<tables.rowCount).compactMap { tables.string($0, 0) })
        for expected in [
            "projects", "devices", "sync_sessions", "file_uploads", "upload_parts", "config_history",
            "trigger_events", "stored_objects", "retry_rounds", "device_heartbeats", "local_deletions",
            "schema_migrations",
        ] {
            #expect(names.contains(expected), "missing table \(expected)")
        }
    }

    @Test func reopeningAppliesNothingAndKeepsOneRecordPerVersion() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        _ = try database.ledger()
        let again = try database.ledger()
        #expect(again.appliedMigrations.isEmpty)
        let rows = try database.connect().execute("SELECT count(*) FROM schema_migrations")
        #expect(rows.int(0, 0) == Migration.all.count)
    }

    @Test func processesMigratingAtTheSameMomentLeaveOneSchema() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        let failures = Mutex<[String]>([])
        let group = DispatchGroup()
        let url = database.url
        for index in 0..<6 {
            DispatchQueue(label: "migrate-\(index)").async(group: group) {
                do {
                    _ = try Ledger(url: url, logger: quietLogger)
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        group.wait()
        #expect(failures.withLock { $0 } == [])
        let rows = try database.connect().execute("SELECT count(*) FROM schema_migrations")
        #expect(rows.int(0, 0) == Migration.all.count)
    }

    @Test func databaseAheadOfThisBinaryIsRefused() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        _ = try database.ledger()
        try database.connect().execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')"
        )
        let error = try #require(throws: LedgerError.self) { try database.ledger() }
        #expect(error.kind == .schemaTooNew)
        #expect(error.description.contains("9999"))
    }

    @Test func editedAppliedMigrationIsRefused() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        _ = try database.ledger()
        try database.connect().execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        let error = try #require(throws: LedgerError.self) { try database.ledger() }
        #expect(error.kind == .migrationFailed)
        #expect(error.description.contains("0001_init.sql was changed"))
    }

    @Test func fileRowsLandInTheirMonthsPartition() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let connection = try database.ledger().connection

        let session = try connection.execute(
            """
            WITH p AS (INSERT INTO projects (name, bucket, region, key_template)
                       VALUES ('p', 'b', 'us-east-1', '{relpath}') RETURNING id)
            INSERT INTO sync_sessions (project_id, kind, hostname, pid, local_directory)
            SELECT id, 'upload', 'h', 1, '/data' FROM p RETURNING id, project_id
            """
        )
        let sessionID = try #require(session.int64(0, 0))
        let projectID = try #require(session.int64(0, 1))
        let inserted = try connection.execute(
            """
            INSERT INTO file_uploads (session_id, project_id, local_path, rel_path, bucket, s3_key, size_bytes, mtime)
            VALUES (\(sessionID), \(projectID), '/data/a', 'a', 'b', 'a', 1, now())
            RETURNING tableoid::regclass::text
            """
        )
        let partition = try #require(inserted.string(0, 0))
        #expect(partition.hasPrefix("file_uploads_2"), "row went to \(partition), not a monthly partition")
    }

    @Test func everyMonthKeepsStatisticsOnlyForColumnsQueriesFilterOn() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let connection = try database.ledger().connection
        try connection.execute("SELECT fleet_ensure_file_upload_partitions('2031-05-01', 1)")

        let targets = try connection.execute(
            """
            SELECT c.relname, a.attname, a.attstattarget FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
            WHERE c.relname IN ('file_uploads_2031_05', to_char(now() AT TIME ZONE 'UTC', '"file_uploads_"YYYY_MM'))
              AND a.attname IN ('rel_path', 'etag', 's3_key', 'status')
            ORDER BY 1, 2
            """
        )
        let found = (0..<targets.rowCount).map { "\(targets.string($0, 1) ?? "")=\(targets.string($0, 2) ?? "")" }
        let expected = ["etag=0", "rel_path=0", "s3_key=-1", "status=-1"]
        #expect(found == expected + expected, "a month made before and one made after version 19 alike")
    }
}
