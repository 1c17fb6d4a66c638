import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore
@testable import FleetLedger

/// What a file costs the ledger to write, against a real server: a claim writes no file row, the outcome's update
/// stays heap-only, and the counts and failure log the trigger keeps match the file rows whoever writes them.
@Suite struct LedgerWritePathTests {
    @Test func aClaimWritesNoFileRowAndTheOutcomeRewritesItInPlace() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fixture = try Fixture(database)
        let session = try fixture.openSession()
        let ledger = fixture.ledger
        // Paths as long as a vehicle's, so the rows grow by their outcome as much as real ones do.
        try ledger.recordFiles(
            fixture.files(60, session: session, depth: 6),
            sessionID: session,
            projectID: fixture.project
        )
        // Each step in a transaction of its own: the server's statistics not yet reported (earlier transactions'
        // and this one's) before and after it differ by exactly its updates.
        func updates(_ step: () throws -> Void) throws -> (all: Int?, heapOnly: Int?) {
            func counts() throws -> (Int, Int) {
                let stats = try ledger.connection.execute(
                    PGQuery(
                        unsafeSQL: """
                            SELECT coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0)
                            FROM pg_stat_xact_user_tables
                            WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'file_uploads'::regclass)
                            """
                    )
                )
                return (stats.int(0, 0) ?? -1, stats.int(0, 1) ?? -1)
            }
            return try ledger.connection.transaction {
                let before = try counts()
                try step()
                let after = try counts()
                return (after.0 - before.0, after.1 - before.1)
            }
        }
        var jobs: [UploadJob] = []
        let claim = try updates { jobs = try ledger.claimRange(sessionID: session, limit: 100, worker: "test:1") }
        #expect(jobs.count == 60)
        #expect(claim.all == 0, "claims: \(claim)")
        let held = try ledger.connection.execute("SELECT count(*) FROM fleet_claimed_files(\(session))")
        #expect(held.int(0, 0) == 60)
        let outcome = try updates {
            try ledger.recordOutcomes(
                jobs.map { fixture.outcome($0, .uploaded) },
                sessionID: session
            )
        }
        #expect(outcome.all == 60 && outcome.heapOnly == 60, "outcomes: \(outcome)")
    }

    /// A range never covers a row `uploading` (it can go back to `pending`, and would turn up in the range): the claim
    /// stops before it, and the next one starts after it.
    @Test func aClaimRangeStopsBeforeARowAnotherClaimMarked() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fixture = try Fixture(database)
        let session = try fixture.openSession()
        let ledger = fixture.ledger
        try ledger.recordFiles(fixture.files(20, session: session), sessionID: session, projectID: fixture.project)
        let rows = try ledger.connection.execute(
            "SELECT id FROM file_uploads WHERE session_id = \(session) ORDER BY id"
        )
        let ids = (0..<rows.rowCount).map { rows.int($0, 0).map(Int64.init) ?? -1 }
        let marked = try ledger.claimFiles(sessionID: session, limit: 1, worker: "r:1", afterID: ids[3])
        #expect(marked.map(\.id) == [ids[4]])

        let first = try ledger.claimRange(sessionID: session, limit: 10, worker: "a:1")
        #expect(first.map(\.id) == Array(ids[0..<4]))
        let next = try ledger.claimRange(sessionID: session, limit: 10, worker: "a:1", afterID: ids[3])
        #expect(next.map(\.id) == Array(ids[5..<15]))
        let last = try ledger.claimRange(sessionID: session, limit: 10, worker: "a:1", afterID: ids[14])
        #expect(last.map(\.id) == Array(ids[15..<20]))
    }

    @Test func claimRangesNeverOverlapAndAGoneHoldersFilesAreSettledRowByRow() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fixture = try Fixture(database)
        let session = try fixture.openSession()
        let ledger = fixture.ledger
        try ledger.recordFiles(fixture.files(100, session: session), sessionID: session, projectID: fixture.project)
        func claim(_ worker: String, after: [UploadJob] = []) throws -> [UploadJob] {
            try ledger.claimRange(sessionID: session, limit: 10, worker: worker, afterID: after.last?.id ?? 0)
        }
        func ranges() throws -> [String] {
            let rows = try ledger.connection.execute(
                "SELECT holder, last_id - first_id + 1 FROM file_claims WHERE session_id = \(session) ORDER BY first_id"
            )
            return (0..<rows.rowCount).map { "\(rows.string($0, 0) ?? "") \(rows.int($0, 1) ?? -1)" }
        }
        func held(_ holder: String) throws -> Int {
            try ledger.connection.execute(
                "SELECT count(*) FROM fleet_claimed_files(\(session)) WHERE holder = \(holder)"
            ).int(0, 0) ?? -1
        }
        func ids(_ jobs: [UploadJob]) -> [Int64] { jobs.map(\.id) }

        // A claims twice in a row: one range, made longer. B, starting from the beginning as a joined process
        // does, gets the files after A's; A's next claim starts a range of its own after B's.
        let a1 = try claim("a:1")
        let a2 = try claim("a:1", after: a1)
        let b1 = try claim("b:2")
        let a3 = try claim("a:1", after: a2)
        let all = ids(a1 + a2 + b1 + a3)
        #expect(all.count == 40 && Set(all).count == 40, "\(all)")
        #expect(ids(a1 + a2 + b1 + a3) == all.sorted())
        #expect(try ranges() == ["a:1 20", "b:2 10", "a:1 10"])
        #expect(try held("a:1") == 30 && held("b:2") == 10)
        #expect(
            try ledger.connection.execute("SELECT count(*) FROM file_uploads WHERE status = 'uploading'").int(0, 0) == 0
        )

        // A file failed inside a range is not a retry's while the range lasts (put back, it would be held by A),
        // nor counted for one; a row of the range with an unfinished multipart upload shows who holds it.
        try ledger.recordOutcomes([fixture.outcome(a1[3], .failed)], sessionID: session)
        #expect(try ledger.claimFiles(sessionID: session, limit: 10, worker: "r:9", status: "failed").isEmpty)
        #expect(
            try ledger.countRetryable(sessionID: session, statuses: ["pending", "failed"], maxAttempts: nil).0 == 60
        )
        try ledger.connection.execute("UPDATE file_uploads SET multipart_upload_id = 'u-1' WHERE id = \(a1[4].id)")
        let key = try ledger.connection.execute("SELECT bucket, s3_key FROM file_uploads WHERE id = \(a1[4].id)")
        let upload = try ledger.unfinishedMultipartUploads(
            projectID: fixture.project,
            bucket: key.string(0, 0) ?? "",
            key: key.string(0, 1) ?? ""
        )
        #expect(upload.first?.holders.map { "\($0.status) \($0.claimedBy ?? "-")" } == ["uploading a:1"])

        // An outcome frees its file from the range; a claim from the beginning never takes a held file.
        try ledger.recordOutcomes(a1.map { fixture.outcome($0, .uploaded) }, sessionID: session)
        #expect(try held("a:1") == 20)
        let c1 = try claim("c:3")
        #expect(c1.first?.id ?? 0 > a3.last?.id ?? .max)

        // B is gone: its files go back, and the next claim from the beginning takes exactly those, stopping at
        // A's range after them.
        #expect(try ledger.releaseClaims(sessionID: session, heldBy: "b:2") == 10)
        #expect(ids(try claim("d:4")) == ids(b1))

        // A is gone: what its ranges still hold becomes rows `uploading` by it, settled as they always were.
        let settled = try ledger.claims(sessionID: session, heldBy: "a:1")
        #expect(ids(settled.map(\.job)) == ids(a2 + a3))
        #expect(settled.allSatisfy { $0.claimedBy == "a:1" })
        #expect(try ranges() == ["d:4 10", "c:3 10"])
        let marked = try ledger.connection.execute(
            "SELECT count(*) FROM file_uploads WHERE status = 'uploading' AND claimed_by = 'a:1' AND claimed_at IS NOT NULL"
        )
        #expect(marked.int(0, 0) == 20)
        #expect(try held("a:1") == 20)
        try fixture.expectCountsMatchRows("after the ranges were settled")

        // While A's files are `uploading` (being settled), D's next claim goes past them and starts a new range
        // rather than growing its own over them; once they are put back they are free, for anyone.
        let d2 = try claim("d:4", after: b1)
        #expect(d2.first?.id ?? 0 > c1.last?.id ?? .max)
        #expect(try ranges() == ["d:4 10", "c:3 10", "d:4 10"])
        try ledger.recordOutcomes(
            settled.map {
                var job = $0.job
                job.claimedFrom = "pending"
                return fixture.outcome(job, .putBack)
            },
            sessionID: session
        )
        #expect(ids(try claim("e:5")) == ids(a2))
        // A retry's claim, a mark on each row, takes free pending files only: A's others, not D's or C's.
        #expect(ids(try ledger.claimFiles(sessionID: session, limit: 10, worker: "r:6")) == ids(a3))
        // Giving up on the pending files leaves those other processes' ranges hold.
        let before = try held("c:3") + held("d:4") + held("e:5")
        _ = try ledger.abandonPendingFiles(sessionID: session, errorClass: "store_unreachable", message: "gave up")
        #expect(try held("c:3") + held("d:4") + held("e:5") == before)
        #expect(before == 40)
        try fixture.expectCountsMatchRows("at the end")
    }

    @Test func noIndexOfFileRowsHoldsAColumnThatAnUpdateChanges() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()
        let connection = try database.connect()
        let columns = try connection.execute(
            PGQuery(
                unsafeSQL: """
                    SELECT DISTINCT a.attname FROM pg_index i
                    JOIN pg_attribute a ON a.attrelid = i.indrelid
                     AND (a.attnum = ANY(i.indkey)
                          OR pg_get_expr(i.indpred, i.indrelid) ~ ('\\m' || a.attname || '\\M')
                          OR pg_get_expr(i.indexprs, i.indrelid) ~ ('\\m' || a.attname || '\\M'))
                    WHERE i.indrelid = 'file_uploads'::regclass AND a.attnum > 0
                    ORDER BY 1
                    """
            )
        )
        let names = (0..<columns.rowCount).compactMap { columns.string($0, 0) }
        #expect(names == ["created_at", "id", "s3_key", "session_id"])
    }

    @Test func countsAndFailureLogFollowEveryWriterOfFileRows() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fixture = try Fixture(database)
        let session = try fixture.openSession()
        let ledger = fixture.ledger
        try ledger.recordFiles(fixture.files(30, session: session), sessionID: session, projectID: fixture.project)
        try fixture.expectCountsMatchRows("after the scan")

        // First round: 10 uploaded, 10 failed, 5 put back untried, 5 left claimed.
        let jobs = try ledger.claimRange(sessionID: session, limit: 30, worker: "test:1")
        try fixture.expectCountsMatchRows("after the claim")
        try ledger.recordOutcomes(
            jobs[0..<10].map { fixture.outcome($0, .uploaded) } + jobs[10..<20].map { fixture.outcome($0, .failed) }
                + jobs[20..<25].map { fixture.outcome($0, .putBack) },
            sessionID: session
        )
        try fixture.expectCountsMatchRows("after the outcomes")
        #expect(try fixture.failuresLogged() == 10)

        // A later run releases the dead claims (the 5 left claimed, and the 5 put back, which the claim's range
        // holds until its run releases it); a retry takes the failed files, puts 3 back untried (no new failure),
        // uploads 4 and fails 3 again (three more failures).
        #expect(try ledger.releaseClaims(sessionID: session) == 10)
        let retried = try ledger.claimFiles(sessionID: session, limit: 30, worker: "test:2", status: "failed")
        #expect(retried.count == 10)
        try ledger.recordOutcomes(
            retried[0..<3].map { fixture.outcome($0, .putBack) } + retried[3..<7].map { fixture.outcome($0, .uploaded) }
                + retried[7..<10].map { fixture.outcome($0, .permanentFailure) },
            sessionID: session
        )
        try fixture.expectCountsMatchRows("after the retry")
        #expect(try fixture.failuresLogged() == 13)
        #expect(try ledger.abandonPendingFiles(sessionID: session, errorClass: "network", message: "gone") == 10)
        #expect(try fixture.failuresLogged() == 23)

        // A bulk load with the ordinary triggers switched off, as a generator does.
        let connection = try database.connect()
        try connection.executeScript(
            """
            SET session_replication_role = replica;
            INSERT INTO file_uploads (session_id, project_id, local_path, rel_path, bucket, s3_key, size_bytes, mtime,
                                      status, error_class, finished_at)
            SELECT \(session), \(fixture.project), '/bulk/' || g, g::text, 'fleet-data', 'bulk/' || g, g, now(),
                   CASE WHEN g % 4 = 0 THEN 'failed' ELSE 'uploaded' END, CASE WHEN g % 4 = 0 THEN 'timeout' END,
                   now() - g * interval '1 hour'
            FROM generate_series(1, 100) AS g;
            RESET session_replication_role;
            """
        )
        try fixture.expectCountsMatchRows("after the bulk load")
        #expect(try fixture.failuresLogged() == 48)

        let totals = try ledger.sessionTotals(session)
        #expect(totals.files == 130)
        #expect(totals.uploadedFiles == 14 + 75)
        #expect(totals.failedFiles == 3 + 3 + 10 + 25)
        #expect(totals.failuresByClass == ["network": 3 + 10, "throttled": 3, "timeout": 25])
    }

    @Test func aKeyTheSessionAlreadyTookIsADuplicateWhicheverBatchTookIt() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fixture = try Fixture(database)
        let session = try fixture.openSession()
        var files = fixture.files(6, session: session)
        files[0].errorClass = "unreadable"
        files[0].errorMessage = "permission denied"
        files[2].key = files[1].key
        files[3].key = files[0].key
        // Two keys, though Swift's `==` takes them for one: a composed `é`, and `e` with a combining accent.
        files[4].key = "raw/caf\u{E9}.wav"
        files[5].key = "raw/cafe\u{301}.wav"
        try fixture.ledger.recordFiles(files, sessionID: session, projectID: fixture.project)
        var later = fixture.files(8, session: session)
        later[6].localPath = "/data/again.wav"
        later[6].key = files[1].key
        try fixture.ledger.recordFiles(Array(later[6...]), sessionID: session, projectID: fixture.project)

        let rows = try database.connect().execute(
            PGQuery(unsafeSQL: "SELECT local_path, status, error_class FROM file_uploads ORDER BY id")
        )
        let recorded = try (0..<rows.rowCount).map {
            [
                try rows.decode(String.self, $0, 0, in: "file_uploads"),
                try rows.decode(String.self, $0, 1, in: "file_uploads"),
                try rows.decodeIfPresent(String.self, $0, 2, in: "file_uploads") ?? "",
            ]
        }
        // The first file with a key keeps it, even one that failed; a later one, in its batch or another, is refused.
        #expect(
            recorded == [
                ["/data/f0.wav", "permanent_failure", "unreadable"], ["/data/f1.wav", "pending", ""],
                ["/data/f2.wav", "permanent_failure", "duplicate_key"],
                ["/data/f3.wav", "permanent_failure", "duplicate_key"], ["/data/f4.wav", "pending", ""],
                ["/data/f5.wav", "pending", ""], ["/data/again.wav", "permanent_failure", "duplicate_key"],
                ["/data/f7.wav", "pending", ""],
            ]
        )
    }

    @Test func aFileRowKeepsItsSessionsProjectAndAWellFormedChecksum() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fixture = try Fixture(database)
        let session = try fixture.openSession()
        let connection = try database.connect()
        try connection.executeScript(
            "INSERT INTO projects (name, bucket, region, key_template) VALUES ('other', 'fleet-data', 'us-east-1', '{path}')"
        )
        // Even the owner of the tables, whom no row security stops: another project's row in this session is refused.
        do {
            try connection.executeScript(
                """
                INSERT INTO file_uploads (session_id, project_id, local_path, rel_path, bucket, s3_key, size_bytes, mtime)
                SELECT \(session), id, '/data/x', 'x', 'fleet-data', 'raw/x', 1, now() FROM projects WHERE name = 'other'
                """
            )
            Issue.record("a row of another project was accepted in the session")
        } catch let error as LedgerError {
            #expect(error.sqlState == "23503", "\(error)")
        }

        try fixture.ledger.recordFiles(
            fixture.files(1, session: session),
            sessionID: session,
            projectID: fixture.project
        )
        let job = try #require(fixture.ledger.claimFiles(sessionID: session, limit: 1, worker: "test:1").first)
        for malformed in [
            String(repeating: "A", count: 64), String(repeating: "a", count: 63),
            "g" + String(repeating: "a", count: 63),
        ] {
            var outcome = fixture.outcome(job, .uploaded)
            outcome.sha256 = malformed
            do {
                try fixture.ledger.recordOutcomes([outcome], sessionID: session)
                Issue.record("checksum \(malformed) was accepted")
            } catch let error as LedgerError {
                #expect(error.sqlState == "23514", "\(error)")
            }
        }
        try fixture.ledger.recordOutcomes([fixture.outcome(job, .uploaded)], sessionID: session)
        let stored = try connection.execute(PGQuery(unsafeSQL: "SELECT status, checksum_sha256 FROM file_uploads"))
        #expect(try stored.decode(String.self, 0, 0, in: "file_uploads") == "uploaded")
        #expect(try stored.decode(String.self, 0, 1, in: "file_uploads") == String(repeating: "a", count: 64))
    }

    /// A file row's session is checked once per statement, not by a foreign key per row: the rule still holds from
    /// both sides, for the tables' owner too, and a session whose rows are being written cannot be deleted under
    /// them.
    @Test func aSessionWithFileRowsKeepsThemAndEveryRowHasItsSession() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fixture = try Fixture(database)
        let session = try fixture.openSession()
        let empty = try fixture.openSession()
        let writer = try database.connect()
        let other = try database.connect()
        func refused(_ sql: String, on connection: PGConnection, _ state: String) {
            do {
                try connection.executeScript(sql)
                Issue.record("accepted: \(sql)")
            } catch let error as LedgerError {
                #expect(error.sqlState == state, "\(sql): \(error)")
            } catch {
                Issue.record("\(sql): \(error)")
            }
        }
        func fileRows(_ session: Int64) throws -> Int? {
            try other.execute(PGQuery(unsafeSQL: "SELECT count(*) FROM file_uploads WHERE session_id = \(session)"))
                .int(0, 0)
        }
        let row = "'/data/x', 'x', 'fleet-data', 'raw/x', 1, now()"
        let columns = "session_id, project_id, local_path, rel_path, bucket, s3_key, size_bytes, mtime"
        // A session that does not exist, in a statement with a valid row too: nothing of it is written.
        refused(
            """
            INSERT INTO file_uploads (\(columns)) VALUES (\(session), \(fixture.project), \(row)),
                (\(session + 1000), \(fixture.project), \(row))
            """,
            on: writer,
            "23503"
        )
        #expect(try fileRows(session) == 0)

        try fixture.ledger.recordFiles(
            fixture.files(3, session: session),
            sessionID: session,
            projectID: fixture.project
        )
        refused("DELETE FROM sync_sessions WHERE id = \(session)", on: other, "23503")
        refused("UPDATE sync_sessions SET project_id = project_id + 1000 WHERE id = \(session)", on: other, "23503")
        refused("TRUNCATE sync_sessions CASCADE", on: other, "23503")
        for statement in ["DELETE FROM sync_sessions WHERE id = \(empty)", "TRUNCATE sync_sessions CASCADE"] {
            refused("BEGIN ISOLATION LEVEL REPEATABLE READ; \(statement); COMMIT", on: other, "55000")
            try other.executeScript("ROLLBACK")
        }
        // A row moved to a session that does not exist, or to another project than its session's.
        refused(
            "UPDATE file_uploads SET session_id = \(session + 1000) WHERE session_id = \(session)",
            on: writer,
            "23503"
        )
        refused(
            "UPDATE file_uploads SET project_id = project_id + 1000 WHERE session_id = \(session)",
            on: writer,
            "23503"
        )
        #expect(try fileRows(session) == 3)
        // An update that keeps its rows' sessions locks none of them: it goes on while another transaction holds the
        // session's row.
        try other.executeScript("BEGIN; SELECT 1 FROM sync_sessions WHERE id = \(session) FOR UPDATE")
        try writer.executeScript(
            "SET lock_timeout = '300ms'; "
                + "UPDATE file_uploads SET attempts = attempts + 1 WHERE session_id = \(session); RESET lock_timeout"
        )
        try other.executeScript("ROLLBACK")

        // A writer's rows of a session not yet committed: the delete waits for them (here, until its lock timeout),
        // then finds them.
        try writer.executeScript(
            "BEGIN; INSERT INTO file_uploads (\(columns)) VALUES (\(empty), \(fixture.project), \(row))"
        )
        refused(
            "SET lock_timeout = '300ms'; DELETE FROM sync_sessions WHERE id = \(empty)",
            on: other,
            "55P03"
        )
        try writer.executeScript("COMMIT")
        refused("DELETE FROM sync_sessions WHERE id = \(empty)", on: other, "23503")
        #expect(try fileRows(empty) == 1)

        // A session without file rows is deleted as before; a writer of its rows waits for the delete, then finds the
        // session gone.
        let unused = try fixture.openSession()
        try other.executeScript("BEGIN; DELETE FROM sync_sessions WHERE id = \(unused)")
        refused(
            "SET lock_timeout = '300ms'; INSERT INTO file_uploads (\(columns)) "
                + "VALUES (\(unused), \(fixture.project), \(row))",
            on: writer,
            "55P03"
        )
        try other.executeScript("COMMIT")
        refused(
            "INSERT INTO file_uploads (\(columns)) VALUES (\(unused), \(fixture.project), \(row))",
            on: writer,
            "23503"
        )
        #expect(try fileRows(unused) == 0)
    }

    @Test func migrationCountsTheRowsALedgerAlreadyHolds() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let connection = try database.connect()
        var before = Migrator(logger: quietLogger)
        before.migrations = Migration.all.filter { $0.version < 13 }  // the ledger as it was before the counts
        _ = try before.migrate(connection)
        try connection.executeScript(
            """
            INSERT INTO projects (name, bucket, region, key_template) VALUES ('survey', 'fleet-data', 'us-east-1', '{path}');
            INSERT INTO devices (name) VALUES ('rig-1');
            INSERT INTO sync_sessions (project_id, device_id, kind, hostname, pid, local_directory)
            SELECT p.id, d.id, 'upload', 'rig-1.local', 1, '/data' FROM projects p, devices d;
            INSERT INTO file_uploads (session_id, project_id, local_path, rel_path, bucket, s3_key, size_bytes, mtime,
                                      status, error_class, claimed_by, finished_at)
            SELECT s.id, s.project_id, '/data/' || g, g::text, 'fleet-data', 'k/' || g, g, now(),
                   (ARRAY['uploaded', 'failed', 'permanent_failure', 'pending', 'uploading'])[1 + g % 5],
                   CASE g % 5 WHEN 1 THEN 'network' WHEN 2 THEN 'access_denied' END,
                   CASE WHEN g % 5 = 4 THEN 'rig-1.local:1' END,
                   CASE WHEN g % 5 < 3 THEN now() - g * interval '10 minutes' END
            FROM sync_sessions s CROSS JOIN generate_series(1, 50) AS g;
            """
        )
        _ = try database.ledger()  // applies the rest
        try Self.expectCountsMatchRows(in: database, "after the migration")
        let failures = try connection.execute(
            PGQuery(unsafeSQL: "SELECT count(*), count(DISTINCT file_upload_id), min(device_id) FROM file_failures")
        )
        #expect(failures.int(0, 0) == 20)
        #expect(failures.int(0, 1) == 20)
        #expect(failures.int(0, 2) != nil)
    }

    /// One project, device and session, and files of 1,000 bytes.
    private struct Fixture {
        let database: TestDatabase
        let ledger: Ledger
        let project: Int64
        let device: Int64
        let config: Int64

        init(_ database: TestDatabase) throws {
            self.database = database
            ledger = try database.ledger()
            let config = try ConfigLoader.decode(
                try ConfigValue.parseYAML(
                    """
                    project: { name: survey }
                    s3: { bucket: fleet-data, prefix: raw }
                    source: { path: /data }
                    """
                )
            )
            project = try ledger.upsertProject(config, region: "us-east-1", endpoint: nil)
            device = try ledger.upsertDevice(name: "rig-1", hostname: "rig-1.local", agentVersion: "0.9.0")
            self.config = try ledger.recordConfig(projectID: project, config: config, sourcePath: nil)
        }

        func openSession() throws -> Int64 {
            try ledger.openSession(
                kind: "upload",
                projectID: project,
                deviceID: device,
                configID: config,
                localDirectory: "/data",
                bucket: "fleet-data",
                prefix: "raw"
            )
        }

        /// `depth` directories of 12 characters between the source and each file.
        func files(_ count: Int, session: Int64, depth: Int = 0) -> [PlannedFile] {
            let directories = (0..<depth).map { "directory-\($0)0/" }.joined()
            return (0..<count).map { index in
                PlannedFile(
                    source: "data",
                    localPath: "/data/\(directories)f\(index).wav",
                    relativePath: "\(directories)f\(index).wav",
                    pathBytes: nil,
                    bucket: "fleet-data",
                    key: "raw/s\(session)/\(directories)f\(index).wav",
                    size: 1000,
                    mtime: Timestamp(seconds: 1_763_000_000)
                )
            }
        }

        func outcome(_ job: UploadJob, _ status: UploadOutcome.Status) -> UploadOutcome {
            var outcome = UploadOutcome(
                job: job,
                status: status,
                attempts: status == .putBack ? 0 : 1,
                startedAt: .now()
            )
            switch status {
            case .uploaded:
                outcome.etag = "\"etag\""
                outcome.sha256 = String(repeating: "a", count: 64)
            case .failed:
                outcome.errorClass = "network"
                outcome.errorMessage = "connection reset by peer"
            case .permanentFailure:
                outcome.errorClass = "throttled"
                outcome.errorMessage = "SlowDown"
                outcome.httpStatus = 503
            case .putBack:
                break
            }
            return outcome
        }

        func expectCountsMatchRows(_ moment: String) throws {
            try LedgerWritePathTests.expectCountsMatchRows(in: database, moment)
        }

        func failuresLogged() throws -> Int {
            try database.connect().execute(PGQuery(unsafeSQL: "SELECT count(*) FROM file_failures")).int(0, 0) ?? -1
        }
    }

    /// `file_upload_counts` holds exactly what grouping the file rows gives (rows of zeros aside).
    static func expectCountsMatchRows(in database: TestDatabase, _ moment: String) throws {
        let connection = try database.connect()
        let differences = try connection.execute(
            PGQuery(
                unsafeSQL: """
                    WITH truth AS (
                        SELECT session_id,
                               coalesce(date_trunc('hour', finished_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                                        '-infinity') AS hour,
                               status, coalesce(error_class, '') AS error_class, count(*) AS files,
                               sum(size_bytes) AS bytes
                        FROM file_uploads GROUP BY 1, 2, 3, 4
                    ), kept AS (
                        SELECT session_id, hour, status, error_class, files, bytes FROM file_upload_counts
                        WHERE files <> 0 OR bytes <> 0
                    )
                    SELECT count(*) FROM ((TABLE truth EXCEPT TABLE kept) UNION ALL (TABLE kept EXCEPT TABLE truth)) AS d
                    """
            )
        )
        #expect(differences.int(0, 0) == 0, "file_upload_counts differs from the file rows \(moment)")
    }
}
