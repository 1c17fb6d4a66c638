import FleetAWS
import FleetSystem
import FleetTestSupport
import Foundation
import Logging
import Testing

@testable import FleetCore
@testable import FleetLedger

/// The agent (`master run`) against the real ledger and S3 server, driven through its control and, where the
/// time of day matters, a manual clock.
@Suite(.serialized)
struct AgentTests {
    /// One agent on a thread of its own, with two sources (terminal, ros) in a temporary tree.
    final class Harness: @unchecked Sendable {
        let database: TestDatabase
        let s3: TestS3
        let tree: TemporaryTree
        let configPath: String
        let control = AgentControl()
        let clock: (any AgentClock)?
        private let finished = DispatchSemaphore(value: 0)
        private var agent: Agent?

        init(
            agentSection: String,
            extra: String = "",
            clock: (any AgentClock)? = nil,
            endpoint: String? = nil
        ) throws {
            database = try TestDatabase()
            _ = try database.ledger()  // migrated before the test queries it
            s3 = try TestS3()
            tree = try TemporaryTree()
            self.clock = clock
            for source in ["terminal", "ros"] {
                try FileManager.default.createDirectory(
                    at: tree.root.appendingPathComponent(source),
                    withIntermediateDirectories: true
                )
            }
            configPath = tree.root.appendingPathComponent("agent.yaml").path
            try write(
                config: Self.yaml(s3: s3, tree: tree, agentSection: agentSection, extra: extra, endpoint: endpoint)
            )
        }

        static func yaml(
            s3: TestS3,
            tree: TemporaryTree,
            agentSection: String,
            extra: String,
            endpoint: String? = nil
        ) -> String {
            """
            project: { name: fleet-agent }
            device: vehicle-7
            s3: { bucket: \(s3.bucket), prefix: "\(s3.prefix.dropLast())", endpoint: "\(endpoint ?? s3.endpoint)", region: \(s3.region) }
            sources:
              - { name: terminal, path: "\(tree.root.path)/terminal" }
              - { name: ros, path: "\(tree.root.path)/ros" }
            keys: { template: "{prefix}/{device}/{date}/{source}/{relpath}" }
            upload: { workers: 4, backoff_base_seconds: 0.1, backoff_cap_seconds: 0.5 }
            agent:
              heartbeat_seconds: 1
            \(agentSection.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            \(extra)
            """
        }

        func write(config text: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: configPath))
        }

        func start(databaseURL: String? = nil) throws {
            let config = try ConfigLoader.load(path: configPath)
            let agent = try Agent(
                configPath: configPath,
                overrides: [],
                config: config,
                databaseURL: databaseURL ?? database.url,
                clock: clock ?? SystemClock(),
                control: control,
                logger: ProcessInfo.processInfo.environment["FLEET_TEST_AGENT_LOG"] != nil
                    ? Logger(label: "agent", factory: { StreamLogHandler.standardError(label: $0) }) : quietLogger
            )
            agent.environment = s3.environment
            self.agent = agent
            // The agent lives on this one thread until it returns; the harness only touches its control.
            nonisolated(unsafe) let owned = agent
            let finished = finished
            Thread.detachNewThread {
                owned.run()
                finished.signal()
            }
        }

        /// Stops the agent and waits for it; true when it returned in time.
        @discardableResult
        func stop(within seconds: Double = 30) -> Bool {
            guard agent != nil else { return true }
            control.requestStop()
            guard finished.wait(timeout: .now() + seconds) == .success else { return false }
            agent = nil
            return true
        }

        func finish() {
            stop()
            database.drop()
            tree.remove()
        }

        /// Writes a file under a source (`terminal/a.log`).
        @discardableResult
        func file(_ path: String, _ text: String, mtime: Date? = nil) throws -> URL {
            let url = tree.root.appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(),
                withIntermediateDirectories: true
            )
            try Data(text.utf8).write(to: url)
            if let mtime { try FileManager.default.setAttributes([.modificationDate: mtime], ofItemAtPath: url.path) }
            return url
        }

        func rows(_ sql: String) throws -> [[String?]] {
            let result = try database.connect().execute(PGQuery(unsafeSQL: sql))
            return (0..<result.rowCount).map { row in (0..<result.columnCount).map { result.string(row, $0) } }
        }

        func count(_ sql: String) throws -> Int { Int(try rows(sql).first?.first.flatMap { $0 } ?? "0") ?? 0 }

        /// The bucket under this test's prefix: key (without the prefix) → contents.
        func bucket() throws -> [String: String] {
            let client = try s3.client()
            var objects: [String: String] = [:]
            try client.listAllObjects(bucket: s3.bucket, prefix: s3.prefix) { page in
                for object in page {
                    let bytes = try client.getObject(bucket: s3.bucket, key: object.key)
                    objects[String(object.key.dropFirst(s3.prefix.count))] = String(decoding: bytes, as: UTF8.self)
                }
            }
            return objects
        }
    }

    private static func today(_ date: Date = Date()) -> String {
        Timestamp(date).calendarDate(offsetSeconds: 0)
    }

    @Test func fileWrittenGraduallyIsUploadedOnceAndComplete() throws {
        let harness = try Harness(agentSection: "stability_seconds: 1\nupload_on_start: false")
        defer { harness.finish() }
        try harness.start()

        let path = harness.tree.root.appendingPathComponent("terminal/drive.log")
        #expect(FileManager.default.createFile(atPath: path.path, contents: nil))
        let handle = try FileHandle(forWritingTo: path)
        var written = ""
        for chunk in 0..<5 {
            let line = "line \(chunk) " + String(repeating: "x", count: 100) + "\n"
            try handle.write(contentsOf: Data(line.utf8))
            written += line
            Thread.sleep(forTimeInterval: 0.4)
        }
        try handle.close()
        let runFolder = "2026-11-23-10-00-00-123456-mini01"
        try harness.file("ros/\(runFolder)/rosout.log", "ros output")

        #expect(
            try eventually {
                try harness.count("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'") == 2
            }
        )
        #expect(harness.stop())
        let day = Self.today()
        let objects = try harness.bucket()
        #expect(
            objects == [
                "vehicle-7/\(day)/terminal/drive.log": written,
                "vehicle-7/2026-11-23/ros/\(runFolder)/rosout.log": "ros output",
            ]
        )
        // One row per file: the half-written versions were never recorded, let alone uploaded.
        #expect(try harness.count("SELECT count(*) FROM file_uploads") == 2)
        #expect(
            try harness.rows("SELECT DISTINCT kind FROM sync_sessions").map { $0[0] ?? "" } == ["immediate"]
        )
        #expect(
            try harness.count(
                "SELECT count(*) FROM devices WHERE name = 'vehicle-7' AND last_heartbeat_at IS NOT NULL"
            ) == 1
        )
    }

    @Test func startupScanTakesRecentFilesIncludingTheBoundaryAndLeavesOlderOnes() throws {
        let start = Date(timeIntervalSince1970: (Date().timeIntervalSince1970).rounded(.down))
        let clock = ManualClock(start)
        let harness = try Harness(
            agentSection: "stability_seconds: 5\nupload_on_start: true",
            extra: "scan: { max_age_days: 3 }",
            clock: clock
        )
        defer { harness.finish() }
        try harness.file("terminal/boundary.log", "exactly three days", mtime: start.addingTimeInterval(-3 * 86_400))
        try harness.file("terminal/old.log", "one second too old", mtime: start.addingTimeInterval(-3 * 86_400 - 1))
        try harness.file("ros/recent.log", "ten minutes", mtime: start.addingTimeInterval(-600))
        try harness.file("ros/fresh.log", "still being written?", mtime: start.addingTimeInterval(-30))
        try harness.start()

        #expect(
            try eventually {
                try harness.count("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'") == 2
            }
        )
        let startup = try harness.rows(
            "SELECT f.rel_path, s.kind FROM file_uploads f JOIN sync_sessions s ON s.id = f.session_id ORDER BY 1"
        )
        #expect(startup.map { $0[0] ?? "" } == ["boundary.log", "recent.log"])
        #expect(startup.allSatisfy { $0[1] == "startup" })

        // The young file waited for its stability time (on the agent's clock), then went up at once.
        clock.advance(6)
        #expect(
            try eventually {
                try harness.count(
                    "SELECT count(*) FROM file_uploads WHERE rel_path = 'fresh.log' AND status = 'uploaded'"
                )
                    == 1
            }
        )
        #expect(harness.stop())
        #expect(try harness.count("SELECT count(*) FROM file_uploads WHERE rel_path = 'old.log'") == 0)
        #expect(try harness.bucket().keys.contains { $0.hasSuffix("/old.log") } == false)
    }

    @Test func outsideOperationalHoursFilesWaitForTheScheduleOrTheHoursToBegin() throws {
        // 20:00 UTC on a Monday; hours 09:00–16:00; a daily run at 22:00.
        let evening = Date(timeIntervalSince1970: 1_795_464_000)  // 2026-11-23T20:00:00Z
        let clock = ManualClock(evening)
        let harness = try Harness(
            agentSection: """
                stability_seconds: 1
                upload_on_start: false
                scan_existing_files: false
                timezone: UTC
                operational_hours: { start: "09:00", end: "16:00" }
                schedule: { daily_at: "22:00" }
                """,
            clock: clock
        )
        defer { harness.finish() }
        try harness.start()
        Thread.sleep(forTimeInterval: 0.5)

        try harness.file("terminal/evening.log", "written at 20:00")
        Thread.sleep(forTimeInterval: 0.5)
        clock.advance(2)
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try harness.count("SELECT count(*) FROM sync_sessions") == 0, "outside hours nothing goes up")

        clock.set(evening.addingTimeInterval(2 * 3600 + 1))  // 22:00:01: the schedule runs
        #expect(
            try eventually {
                try harness.count(
                    "SELECT count(*) FROM sync_sessions WHERE kind = 'scheduled' AND status = 'completed'"
                )
                    == 1
            }
        )

        try harness.file("terminal/night.log", "written after the run")
        Thread.sleep(forTimeInterval: 0.5)
        clock.advance(2)
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try harness.count("SELECT count(*) FROM sync_sessions") == 1, "still outside hours")

        clock.set(evening.addingTimeInterval(13 * 3600))  // 09:00 next day: the hours begin
        #expect(
            try eventually {
                try harness.count(
                    "SELECT count(*) FROM sync_sessions WHERE kind = 'immediate' AND status = 'completed'"
                )
                    == 1
            }
        )
        try harness.file("ros/morning.log", "inside hours")
        Thread.sleep(forTimeInterval: 0.5)
        clock.advance(2)
        #expect(
            try eventually {
                try harness.count(
                    "SELECT count(*) FROM sync_sessions WHERE kind = 'immediate' AND status = 'completed'"
                )
                    == 2
            }
        )
        #expect(harness.stop())
        let kinds = try harness.rows(
            """
            SELECT f.rel_path, s.kind FROM file_uploads f JOIN sync_sessions s ON s.id = f.session_id
            WHERE f.status = 'uploaded' ORDER BY f.id
            """
        )
        #expect(
            kinds.map { "\($0[0] ?? "") \($0[1] ?? "")" } == [
                "evening.log scheduled", "night.log immediate", "morning.log immediate",
            ]
        )
    }

    @Test func scheduledRunThatCannotReachTheStoreRunsOnceItIsBack() throws {
        let evening = Date(timeIntervalSince1970: 1_795_464_000)  // 2026-11-23T20:00:00Z
        let clock = ManualClock(evening)
        let s3 = try TestS3()
        let proxy = try OutageProxy(target: s3.endpoint)
        let harness = try Harness(
            agentSection: """
                stability_seconds: 1
                upload_on_start: false
                scan_existing_files: false
                timezone: UTC
                operational_hours: { start: "09:00", end: "16:00" }
                schedule: { daily_at: "22:00" }
                """,
            clock: clock,
            endpoint: proxy.endpoint
        )
        defer { harness.finish() }
        try harness.start()
        try harness.file("terminal/night.log", "waits for 22:00")
        Thread.sleep(forTimeInterval: 0.5)
        clock.advance(2)
        Thread.sleep(forTimeInterval: 0.5)

        try proxy.down()
        clock.set(evening.addingTimeInterval(2 * 3600 + 1))  // 22:00:01, the store unreachable
        Thread.sleep(forTimeInterval: 2)
        try proxy.up()
        clock.advance(60)  // past the backoff: the scheduled run is still due, outside the hours
        #expect(
            try eventually {
                try harness.count("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'") == 1
            }
        )
        #expect(harness.stop())
        #expect(try harness.rows("SELECT kind FROM sync_sessions WHERE status = 'completed'") == [["scheduled"]])
    }

    @Test func oldFileWhoseAttributesChangeIsNotTakenUp() throws {
        let harness = try Harness(
            agentSection: "stability_seconds: 0.3\nupload_on_start: true",
            extra: "scan: { max_age_days: 3 }"
        )
        defer { harness.finish() }
        let old = try harness.file("terminal/old.log", "ten days old", mtime: Date().addingTimeInterval(-10 * 86_400))
        try harness.start()
        Thread.sleep(forTimeInterval: 0.5)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: old.path)  // chmod: IN_ATTRIB
        try harness.file("terminal/new.log", "new")
        #expect(
            try eventually { try harness.count("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'") == 1 }
        )
        Thread.sleep(forTimeInterval: 1)
        #expect(harness.stop())
        #expect(try harness.rows("SELECT rel_path FROM file_uploads") == [["new.log"]])
    }

    @Test func reloadWithABrokenConfigurationKeepsTheRunningOne() throws {
        let harness = try Harness(agentSection: "stability_seconds: 0.5\nupload_on_start: false")
        defer { harness.finish() }
        try harness.start()
        try harness.file("terminal/before.log", "before")
        #expect(
            try eventually { try harness.count("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'") == 1 }
        )

        try harness.write(config: "project: { name: [unclosed\n")
        harness.control.requestReload()
        Thread.sleep(forTimeInterval: 1)
        try harness.file("terminal/after.log", "after")
        #expect(
            try eventually { try harness.count("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'") == 2 }
        )
        #expect(harness.stop())
    }

    @Test func deletesUploadedFilesAfterUploadAndRecordsEachDeletion() throws {
        let harness = try Harness(
            agentSection: "stability_seconds: 0.5\nupload_on_start: false",
            extra: "deletion: { after_upload: { keep_days: 0 } }"
        )
        defer { harness.finish() }
        try harness.start()
        let first = try harness.file("terminal/a.log", "aaa")
        let second = try harness.file("ros/run/b.log", "bbb")
        #expect(
            try eventually {
                try harness.count("SELECT count(*) FROM local_deletions WHERE reason = 'after_upload'") == 2
            }
        )
        #expect(harness.stop())
        #expect(!FileManager.default.fileExists(atPath: first.path))
        #expect(!FileManager.default.fileExists(atPath: second.path))
        #expect(try harness.bucket().count == 2)
        #expect(
            try harness.count(
                "SELECT count(*) FROM file_uploads WHERE status = 'uploaded' AND local_deleted_at IS NOT NULL"
            ) == 2
        )
    }

    @Test func withoutTheLedgerItKeepsDetectingDeletesNothingAndCatchesUpWhenItIsBack() throws {
        let harness = try Harness(
            agentSection: "stability_seconds: 0.3\nupload_on_start: false",
            extra: "deletion: { after_upload: { keep_days: 0 } }"
        )
        defer { harness.finish() }
        var url = try #require(URLComponents(string: harness.database.url))
        let proxy = try OutageProxy(target: "http://127.0.0.1:\(try #require(url.port))")
        try proxy.down()
        url.port = Int(try #require(proxy.endpoint.split(separator: ":").last))
        try harness.start(databaseURL: url.string)

        let file = try harness.file("terminal/a.log", "kept until the ledger confirms its upload")
        Thread.sleep(forTimeInterval: 2)
        #expect(FileManager.default.fileExists(atPath: file.path))
        #expect(try harness.count("SELECT count(*) FROM sync_sessions") == 0)

        try proxy.up()
        #expect(try eventually { try harness.count("SELECT count(*) FROM local_deletions") == 1 })
        #expect(harness.stop())
        #expect(!FileManager.default.fileExists(atPath: file.path))
        #expect(try harness.bucket().values.first == "kept until the ledger confirms its upload")
    }

    @Test func startReconcilesWhatAKilledAgentLeftUploading() throws {
        let harness = try Harness(agentSection: "stability_seconds: 0.5\nupload_on_start: true")
        defer { harness.finish() }
        let old = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down) - 3600)
        try harness.file("terminal/done.log", "reached the bucket", mtime: old)
        try harness.file("terminal/lost.log", "never reached it", mtime: old)

        // A process that is gone now.
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let pid = dead.processIdentifier
        let host = ProcessInfo.processInfo.hostName
        let day = Self.today(old)
        let prefix = String(harness.s3.prefix.dropLast())
        let ledger = try harness.database.ledger()
        try ledger.connection.executeScript(
            """
            INSERT INTO projects (name, bucket, region, key_template)
            VALUES ('fleet-agent', '\(harness.s3.bucket)', 'us-east-1', 'x');
            INSERT INTO devices (name) VALUES ('vehicle-7');
            INSERT INTO sync_sessions (project_id, device_id, kind, hostname, pid, local_directory)
            VALUES (1, 1, 'immediate', '\(host)', \(pid), 'x');
            """
        )
        for name in ["done.log", "lost.log"] {
            let path = harness.tree.root.appendingPathComponent("terminal/\(name)").path
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
            try ledger.connection.execute(
                """
                INSERT INTO file_uploads (session_id, project_id, source, local_path, rel_path, bucket, s3_key,
                                          size_bytes, mtime, status, claimed_by, claimed_at)
                VALUES (1, 1, 'terminal', \(path), \(name), \(harness.s3.bucket),
                        \("\(prefix)/vehicle-7/\(day)/terminal/\(name)"), \(size), \(Timestamp(old))::timestamptz,
                        'uploading', \("\(host):\(pid)"), now())
                """
            )
        }
        // The killed agent's PUT of done.log had finished; its outcome was never recorded.
        _ = try harness.s3.client().uploadFile(
            try LocalFile(path: harness.tree.root.appendingPathComponent("terminal/done.log").path),
            bucket: harness.s3.bucket,
            key: "\(prefix)/vehicle-7/\(day)/terminal/done.log"
        )

        try harness.start()
        #expect(
            try eventually {
                try harness.count("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'") == 2
            }
        )
        #expect(harness.stop())
        let rows = try harness.rows(
            "SELECT rel_path, session_id, status, coalesce(error_class, '') FROM file_uploads ORDER BY id"
        )
        #expect(
            rows.map { $0.map { $0 ?? "" } } == [
                ["done.log", "1", "uploaded", ""],  // confirmed in the bucket: not sent again
                ["lost.log", "1", "failed", "interrupted"],
                ["lost.log", "2", "uploaded", ""],  // sent again by the start-up run
            ]
        )
        #expect(try harness.rows("SELECT status FROM sync_sessions WHERE id = 1") == [["interrupted"]])
        #expect(
            try harness.bucket() == [
                "vehicle-7/\(day)/terminal/done.log": "reached the bucket",
                "vehicle-7/\(day)/terminal/lost.log": "never reached it",
            ]
        )
    }
}
