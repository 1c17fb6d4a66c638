import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetLedger

/// Vehicles' login roles against the real server: each sees and changes only its own device's rows and the
/// projects it was granted, never the schema.
struct RowSecurityTests {
    /// A session of `device` in `project` with `files` recorded (`a.log`, `b.log` … under `raw/`), as the device's
    /// own login writes it.
    private static func session(
        _ ledger: Ledger,
        device: String,
        project: String,
        keys: [String]
    ) throws -> (session: Int64, project: Int64, device: Int64) {
        let (sessionID, projectID, deviceID) = try openTestSession(ledger, project: project, device: device)
        try ledger.recordFiles(
            keys.map {
                PlannedFile(
                    source: "data",
                    localPath: "/data/\($0)",
                    relativePath: $0,
                    pathBytes: nil,
                    bucket: "fleet-data",
                    key: "raw/\($0)",
                    size: 5,
                    mtime: Timestamp(microseconds: 1_700_000_000_000_000)
                )
            },
            sessionID: sessionID,
            projectID: projectID
        )
        try ledger.recordHeartbeat(
            deviceID: deviceID,
            DeviceHeartbeat(disk: nil, queueFiles: 1, queueBytes: 5, agentVersion: "1.0", lastUploadAt: nil)
        )
        return (sessionID, projectID, deviceID)
    }

    @Test func aDeviceReadsAndChangesOnlyItsOwnRows() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let a = try TestDevice(database, projects: ["survey"])
        defer { a.remove() }
        let b = try TestDevice(database, projects: ["survey", "mapping"])
        defer { b.remove() }
        let mine = try Self.session(try a.ledger(), device: a.name, project: "survey", keys: ["a.log", "b.log"])
        let theirs = try Self.session(try b.ledger(), device: b.name, project: "survey", keys: ["c.log"])
        let other = try Self.session(try b.ledger(), device: b.name, project: "mapping", keys: ["d.log"])

        let asA = try PGConnection(conninfo: a.url)
        // Reading: only A's sessions, files, heartbeats and device; only the project it was granted.
        #expect(try asA.execute("SELECT array_agg(id)::text FROM sync_sessions").string(0, 0) == "{\(mine.session)}")
        #expect(try asA.execute("SELECT count(*) FROM file_uploads").int(0, 0) == 2)
        #expect(
            try asA.execute("SELECT count(*) FROM file_uploads WHERE session_id = \(theirs.session)").int(0, 0) == 0
        )
        #expect(try asA.execute("SELECT array_agg(name)::text FROM devices").string(0, 0) == "{\(a.name)}")
        #expect(try asA.execute("SELECT count(*) FROM device_heartbeats").int(0, 0) == 1)
        #expect(try asA.execute("SELECT array_agg(name)::text FROM projects").string(0, 0) == "{survey}")
        #expect(
            try asA.execute("SELECT count(*) FROM config_history WHERE project_id = \(other.project)").int(0, 0) == 0
        )
        #expect(try asA.execute("SELECT count(*) FROM device_logins").int(0, 0) == 1)
        #expect(try a.ledger().session(theirs.session) == nil)

        // Writing: another device's rows are not found, so nothing changes.
        #expect(
            try asA.execute("UPDATE sync_sessions SET status = 'failed' WHERE id = \(theirs.session)").affectedRows
                == 0
        )
        #expect(
            try asA.execute("UPDATE file_uploads SET status = 'failed' WHERE session_id = \(theirs.session)")
                .affectedRows == 0
        )
        #expect(try asA.execute("DELETE FROM local_deletions WHERE device_id = \(theirs.device)").affectedRows == 0)
        #expect(
            try a.ledger().claimFiles(sessionID: theirs.session, limit: 10, worker: "thief:1").isEmpty,
            "a claim finds no row of another device's session"
        )
        #expect(try a.ledger().claimRange(sessionID: theirs.session, limit: 10, worker: "thief:1").isEmpty)
        // B's claim ranges: A neither sees nor releases them, and cannot hold files of B's session.
        #expect(try b.ledger().claimRange(sessionID: theirs.session, limit: 10, worker: "b:1").count == 1)
        #expect(try asA.execute("SELECT count(*) FROM file_claims").int(0, 0) == 0)
        #expect(try asA.execute("DELETE FROM file_claims WHERE session_id = \(theirs.session)").affectedRows == 0)
        #expect(try a.ledger().releaseClaims(sessionID: theirs.session) == 0)
        try expectRefused(
            asA,
            "INSERT INTO file_claims (session_id, first_id, last_id, holder) VALUES (\(theirs.session), 1, 9, 'x:1')"
        )
        // …and rows claiming to be another device's, or in another device's session, are refused.
        try expectRefused(
            asA,
            """
            INSERT INTO sync_sessions (project_id, device_id, kind, hostname, pid, local_directory)
            VALUES (\(mine.project), \(theirs.device), 'upload', 'x', 1, '/x')
            """
        )
        try expectRefused(
            asA,
            """
            INSERT INTO file_uploads (session_id, project_id, local_path, rel_path, bucket, s3_key, size_bytes, mtime)
            VALUES (\(theirs.session), \(mine.project), '/x', 'x', 'fleet-data', 'raw/x', 1, now())
            """
        )
        try expectRefused(
            asA,
            "INSERT INTO device_heartbeats (device_id, disk_used_percent) VALUES (\(theirs.device), 1)"
        )
        try expectRefused(asA, "UPDATE devices SET name = 'renamed' WHERE id = \(mine.device)")

        // B's rows as the admin sees them: untouched.
        let admin = try database.connect()
        let untouched = try admin.execute(
            """
            SELECT (SELECT status FROM sync_sessions WHERE id = \(theirs.session)),
                   (SELECT array_agg(DISTINCT status)::text FROM file_uploads WHERE session_id = \(theirs.session)),
                   (SELECT count(*) FROM sync_sessions),
                   (SELECT count(*) FROM fleet_claimed_files(\(theirs.session)) WHERE holder = 'b:1')
            """
        )
        #expect(untouched.string(0, 0) == "running")
        #expect(untouched.string(0, 1) == "{pending}")
        #expect(untouched.int(0, 2) == 3)
        #expect(untouched.int(0, 3) == 1)
    }

    /// The columns of compressed uploads (migration 0012) are written by a vehicle's own login as the upload
    /// writes them: the codec when the file is recorded, the object's size with the outcome, and the file row is
    /// the object's record (`object_records`).
    @Test func aDeviceRecordsCompressedFilesAndWhatWasSent() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let device = try TestDevice(database, projects: ["survey"])
        defer { device.remove() }
        let ledger = try device.ledger()
        let (sessionID, projectID, _) = try openTestSession(ledger, project: "survey", device: device.name)
        var planned = PlannedFile(
            source: "data",
            localPath: "/data/app.log",
            relativePath: "app.log",
            pathBytes: nil,
            bucket: "fleet-data",
            key: "raw/app.log.zst",
            size: 1000,
            mtime: Timestamp(microseconds: 1_700_000_000_000_000)
        )
        planned.codec = ("zstd", 3)
        try ledger.recordFiles([planned], sessionID: sessionID, projectID: projectID)
        let job = try #require(try ledger.claimFiles(sessionID: sessionID, limit: 10, worker: "rig:1").first)
        #expect(job.codec?.name == "zstd" && job.codec?.level == 3)
        var outcome = UploadOutcome(job: job, status: .uploaded, attempts: 1, startedAt: .now())
        outcome.sha256 = String(repeating: "ab", count: 32)
        outcome.etag = "\"e\""
        outcome.sentSize = 120
        try ledger.recordOutcomes([outcome], sessionID: sessionID)

        let rows = try database.connect().execute(
            """
            SELECT f.status, f.codec, f.codec_level, f.sent_bytes, f.size_bytes, o.codec, o.sent_bytes, o.size_bytes
            FROM file_uploads f JOIN object_records o USING (project_id, bucket, s3_key)
            """
        )
        #expect(rows.rowCount == 1)
        #expect(rows.string(0, 0) == "uploaded" && rows.string(0, 1) == "zstd" && rows.int(0, 2) == 3)
        #expect(rows.int(0, 3) == 120 && rows.int(0, 4) == 1000)
        #expect(rows.string(0, 5) == "zstd" && rows.int(0, 6) == 120 && rows.int(0, 7) == 1000)
    }

    @Test func aDeviceMayNotChangeTheSchemaOrRoles() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let device = try TestDevice(database, projects: ["survey"])
        defer { device.remove() }
        _ = try Self.session(try device.ledger(), device: device.name, project: "survey", keys: ["a.log"])
        let connection = try PGConnection(conninfo: device.url)
        for statement in [
            "CREATE TABLE mine (a int)",
            "ALTER TABLE file_uploads ADD COLUMN extra text",
            "DROP TABLE stored_objects",
            "TRUNCATE file_uploads",
            "ALTER TABLE sync_sessions DISABLE ROW LEVEL SECURITY",
            "DROP POLICY fleet_device_own ON sync_sessions",
            "CREATE ROLE intruder",
            "GRANT fleet_admin TO \"\(device.name)\"",
            "DELETE FROM sync_sessions",
            "INSERT INTO device_projects (role_name, project_name) VALUES ('\(device.name)', 'mapping')",
            "UPDATE schema_migrations SET checksum = 'x'",
            "CREATE TABLE file_uploads_x (LIKE file_uploads)",
        ] {
            try expectRefused(connection, statement)
        }
        // The counting trigger's function writes as its owner: a device may not attach it to a table of its own
        // and forge counts or failures through it.
        try connection.execute("CREATE TEMPORARY TABLE forged (LIKE file_uploads)")
        try expectRefused(
            connection,
            """
            CREATE TRIGGER forge AFTER INSERT ON forged REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION fleet_count_file_uploads()
            """
        )
        // The months' partitions are made for it (by the function's owner), a year ahead too.
        try connection.execute("SELECT fleet_ensure_file_upload_partitions(now() + interval '12 months', 1)")
        let partition = try connection.execute(
            "SELECT to_regclass('file_uploads_' || to_char(now() + interval '12 months', 'YYYY_MM')) IS NOT NULL"
        )
        #expect(partition.bool(0, 0) == true)
        #expect(try connection.execute("SHOW jit").string(0, 0) == "off")
        #expect(try database.connect().execute("SELECT count(*) FROM sync_sessions").int(0, 0) == 1)
    }

    /// `object_records` reads file rows with its owner's rights and filters them by the caller's projects: a
    /// function of the device's own in the query's condition must not see a row before that filter has run.
    @Test func aDeviceSeesNoOtherProjectsRecordsThroughAFunctionOfItsOwn() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let device = try TestDevice(database, projects: ["survey"])
        defer { device.remove() }
        let admin = try database.ledger()
        let owner = try Self.session(admin, device: "depot", project: "mapping", keys: ["a.log", "b.log"])
        try admin.connection.execute(
            """
            UPDATE file_uploads SET status = 'uploaded', checksum_sha256 = \(String(repeating: "c", count: 64)),
                   etag = '"e"', finished_at = now(), recorded_at = now()
            WHERE session_id = \(owner.session)
            """
        )
        let asDevice = try PGConnection(conninfo: device.url)
        try asDevice.executeScript(
            """
            CREATE TEMPORARY TABLE seen (s3_key text);
            CREATE FUNCTION pg_temp.peek(key text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
            BEGIN
                INSERT INTO seen VALUES (key);
                RETURN true;
            END
            $$;
            """
        )
        let visible = try asDevice.execute("SELECT count(*) FROM object_records WHERE pg_temp.peek(s3_key)")
        #expect(visible.int(0, 0) == 0)
        #expect(try asDevice.execute("SELECT count(*) FROM seen").int(0, 0) == 0)
        #expect(try database.connect().execute("SELECT count(*) FROM object_records").int(0, 0) == 2)
    }

    @Test func aDeviceLearnsOfKnownKeysOnlyWhatItMayReadAndWhoOwnsThem() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let device = try TestDevice(database, projects: ["survey"])
        defer { device.remove() }
        // Project "mapping" (the admin's) stores raw/a.log; raw/p.log is only pending in one of its sessions, and
        // a session of another device in the device's own project has raw/q.log pending.
        let admin = try database.ledger()
        let owner = try Self.session(admin, device: "depot", project: "mapping", keys: ["a.log", "p.log"])
        try admin.connection.execute(
            """
            UPDATE file_uploads SET status = 'uploaded', checksum_sha256 = \(String(repeating: "c", count: 64)),
                   etag = '"e"', finished_at = now()
            WHERE session_id = \(owner.session) AND s3_key = 'raw/a.log'
            """
        )
        let other = try Self.session(admin, device: "other-vehicle", project: "survey", keys: ["q.log"])

        let mine = try Self.session(try device.ledger(), device: device.name, project: "survey", keys: ["m.log"])

        let asDevice = try PGConnection(conninfo: device.url)
        func known(_ project: Int64, _ session: Int64?) throws -> [String] {
            let rows = try asDevice.execute(
                """
                SELECT s3_key || ':' || coalesce(owner, '-')
                FROM fleet_known_keys(\(project), \(session)::bigint, ARRAY['fleet-data'],
                                      ARRAY['raw/a.log', 'raw/p.log', 'raw/q.log', 'raw/m.log'])
                ORDER BY 1
                """
            )
            return (0..<rows.rowCount).map { rows.string($0, 0) ?? "" }
        }
        #expect(try known(owner.project, owner.session) == [], "another project named as its own: nothing")
        #expect(try known(other.project, other.session) == ["raw/a.log:mapping"], "nor another device's session")
        #expect(
            try known(mine.project, mine.session) == ["raw/a.log:mapping", "raw/m.log:-"],
            "its own session's pending row"
        )
    }

    @Test func aDeviceIsRefusedAKeyAnotherProjectOwnsWithoutReadingThatProject() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let device = try TestDevice(database, projects: ["survey"])
        defer { device.remove() }
        // The admin's project "mapping" uploaded raw/a.log to the same bucket (its file row is the record), and
        // imported raw/c.log (a stored_objects row).
        let admin = try database.ledger()
        let owner = try Self.session(admin, device: "depot", project: "mapping", keys: ["a.log"])
        try admin.connection.execute(
            """
            UPDATE file_uploads SET status = 'uploaded', checksum_sha256 = \(String(repeating: "c", count: 64)),
                   etag = '"e"', finished_at = now()
            WHERE session_id = \(owner.session)
            """
        )
        try admin.connection.execute(
            """
            INSERT INTO stored_objects (project_id, bucket, s3_key, size_bytes, mtime, imported_from)
            VALUES (\(owner.project), 'fleet-data', 'raw/c.log', 5, now(), 'tvm_registry')
            """
        )

        let mine = try Self.session(
            try device.ledger(),
            device: device.name,
            project: "survey",
            keys: ["a.log", "b.log", "c.log"]
        )

        let rows = try database.connect().execute(
            """
            SELECT s3_key, status, coalesce(error_class, ''), coalesce(error_message, '') FROM file_uploads
            WHERE session_id = \(mine.session) ORDER BY s3_key
            """
        )
        #expect(rows.string(0, 1) == "permanent_failure")
        #expect(rows.string(0, 2) == "key_owned_by_other_project")
        #expect(rows.string(0, 3)?.contains("project 'mapping'") == true, "\(rows.string(0, 3) ?? "")")
        #expect(rows.string(1, 1) == "pending")
        #expect(rows.string(2, 2) == "key_owned_by_other_project")
        let asDevice = try PGConnection(conninfo: device.url)
        #expect(try asDevice.execute("SELECT count(*) FROM stored_objects").int(0, 0) == 0)
        #expect(try asDevice.execute("SELECT count(*) FROM object_records").int(0, 0) == 0)
        #expect(try database.connect().execute("SELECT count(*) FROM object_records").int(0, 0) == 2)
        #expect(try asDevice.execute("SELECT count(*) FROM projects WHERE name = 'mapping'").int(0, 0) == 0)
        // The plan sees the same refusal.
        let plan = try device.ledger().comparePlan(projectName: "survey", multipartThreshold: 1 << 30) { rows in
            try rows.add(bucket: "fleet-data", key: "raw/a.log", size: 5, mtime: .now())
        }
        #expect(plan.otherProjectKeys == [OtherProjectKey(bucket: "fleet-data", key: "raw/a.log", project: "mapping")])
    }

    @Test func aDeviceOpensACurrentLedgerWithoutMigratingAndLeavesPendingMigrationsToAnAdmin() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let device = try TestDevice(database, projects: ["survey"])
        defer { device.remove() }
        #expect(try device.ledger().appliedMigrations.isEmpty)

        // The newest migration looks pending (its record set aside, and put back so the device can be removed).
        let newest = Migration.all.last!.version
        let admin = try database.connect()
        try admin.execute("UPDATE schema_migrations SET version = -version WHERE version = \(newest)")
        let error = try #require(throws: LedgerError.self) { try device.ledger() }
        try admin.execute("UPDATE schema_migrations SET version = -version WHERE version = \(-newest)")
        #expect(error.kind == .migrationFailed)
        #expect(error.description.contains("an admin applies it with `master migrate`"), "\(error)")
    }

    @Test func aDeviceNamingAnotherDeviceOrAnUngrantedProjectIsAConfigurationError() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let device = try TestDevice(database, projects: ["survey"])
        defer { device.remove() }
        let ledger = try device.ledger()

        let wrongDevice = try #require(throws: ConfigError.self) {
            try ledger.upsertDevice(name: "someone-else", hostname: "x", agentVersion: "1.0")
        }
        #expect(
            wrongDevice.description
                == "device: the ledger login \(device.name) is device '\(device.name)', not 'someone-else'"
        )
        let wrongProject = try #require(throws: ConfigError.self) {
            try ledger.upsertProject(
                ProjectDestination(
                    name: "mapping",
                    bucket: "b",
                    prefix: "",
                    region: "us-east-1",
                    endpoint: nil,
                    keyTemplate: "{relpath}"
                )
            )
        }
        #expect(
            wrongProject.description.hasPrefix(
                "project.name: the device login \(device.name) may not use project 'mapping' (granted: survey)"
            )
        )
    }

    @Test func aReaderSeesEveryDevicesRowsAndWritesNothing() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let device = try TestDevice(database, projects: ["survey"])
        defer { device.remove() }
        let admin = try database.ledger()
        _ = try Self.session(admin, device: "depot", project: "mapping", keys: ["a.log"])
        _ = try Self.session(try device.ledger(), device: device.name, project: "survey", keys: ["b.log", "c.log"])
        let reader = "grafana-" + UUID().uuidString.prefix(8).lowercased()
        try admin.connection.executeScript("CREATE ROLE \"\(reader)\" LOGIN IN ROLE fleet_reader")
        defer { try? admin.connection.executeScript("DROP ROLE \"\(reader)\"") }

        let connection = try PGConnection(conninfo: try database.url(user: reader))
        let seen = try connection.execute(
            """
            SELECT (SELECT count(*) FROM sync_sessions), (SELECT count(*) FROM file_uploads),
                   (SELECT count(*) FROM devices), (SELECT count(*) FROM device_logins)
            """
        )
        #expect([seen.int(0, 0), seen.int(0, 1), seen.int(0, 2), seen.int(0, 3)] == [2, 3, 2, 1])
        try expectRefused(connection, "UPDATE file_uploads SET status = 'failed'")
        try expectRefused(connection, "INSERT INTO projects (name, region, key_template) VALUES ('x', 'r', 't')")
        try expectRefused(connection, "CREATE TABLE mine (a int)")
    }

    @Test func anAdminThatIsNoSuperuserMigratesAndFleetAdminOwnsTheTables() throws {
        let database = try TestDatabase()
        let ops = "ops-" + UUID().uuidString.prefix(8).lowercased()
        defer {
            // The role owns the database: it goes after it.
            database.drop()
            let cluster = ProcessInfo.processInfo.environment["FLEET_TEST_DATABASE_URL"] ?? ""
            try? PGConnection(conninfo: cluster).executeScript("DROP ROLE IF EXISTS \"\(ops)\"")
        }
        let cluster = try database.connect()
        try cluster.executeScript(
            "CREATE ROLE \"\(ops)\" LOGIN CREATEROLE; ALTER DATABASE \(database.name) OWNER TO \"\(ops)\""
        )

        let ledger = try Ledger(url: try database.url(user: ops), logger: quietLogger)
        #expect(ledger.appliedMigrations.count == Migration.all.count)
        let owners = try cluster.execute(
            """
            SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM pg_class
            WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition
            """
        )
        #expect(owners.string(0, 0) == "fleet_admin")
        // Its device logins work, a year's partitions included.
        try ledger.addDeviceLogin(device: ops + "-rig", projects: ["survey"], password: nil)
        defer {
            try? cluster.executeScript(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = '\(ops)-rig'"
            )
            _ = try? ledger.removeDeviceLogin(device: ops + "-rig")
        }
        let device = try Ledger(url: try database.url(user: ops + "-rig"), logger: quietLogger)
        _ = try Self.session(device, device: ops + "-rig", project: "survey", keys: ["a.log"])
        try device.connection.execute("SELECT fleet_ensure_file_upload_partitions(now() + interval '13 months', 1)")
    }

    @Test func everyTableWithFleetDataHasRowLevelSecurity() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()
        let unprotected = try database.connect().execute(
            """
            SELECT coalesce(string_agg(c.relname, ', ' ORDER BY c.relname), '') FROM pg_class c
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND NOT c.relrowsecurity AND c.relname <> 'schema_migrations'
            """
        )
        #expect(unprotected.string(0, 0) == "", "tables a device role could read without a policy")
    }
}

/// `statement` fails for lack of privilege (SQLSTATE 42501) or because the role is not the owner.
private func expectRefused(
    _ connection: PGConnection,
    _ statement: String,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    do {
        try connection.executeScript(statement)
        Issue.record("not refused: \(statement)", sourceLocation: sourceLocation)
    } catch let error as LedgerError {
        #expect(error.sqlState == "42501", "\(statement): \(error)", sourceLocation: sourceLocation)
    }
}
