import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// `master run` as systemd would run it: signals from outside, a SIGKILL in the middle of uploads.
@Suite(.serialized)
struct AgentCLITests {
    private static func agentConfig(_ scratch: Scratch, _ s3: TestS3, sources: [String], agent: String) throws -> String
    {
        for source in sources {
            try FileManager.default.createDirectory(
                at: scratch.url.appendingPathComponent(source),
                withIntermediateDirectories: true
            )
        }
        return try scratch.write(
            "agent.yaml",
            """
            project: { name: agent-cli }
            device: vehicle-9
            s3: { bucket: \(s3.bucket), prefix: "\(s3.prefix.dropLast())", endpoint: "\(s3.endpoint)", region: \(s3.region) }
            sources:
            \(sources.map { "  - { name: \($0), path: \($0) }" }.joined(separator: "\n"))
            keys: { template: "{prefix}/{device}/{date}/{source}/{relpath}" }
            upload: { workers: 4, backoff_base_seconds: 0.1, backoff_cap_seconds: 0.5 }
            agent: { \(agent) }
            """
        )
    }

    private static func write(_ scratch: Scratch, _ path: String, _ text: String) throws {
        let url = scratch.url.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    @Test func reloadsOnHangupKeepsRunningWithABrokenConfigurationAndStopsCleanlyOnTerm() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()  // migrated before the test queries it
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let config = try Self.agentConfig(
            scratch,
            s3,
            sources: ["terminal"],
            agent: "stability_seconds: 0.5, upload_on_start: false"
        )
        let agent = try CLI.start(
            "master",
            ["run", "--config", config, "--database", database.url, "--log-level", "info"],
            environment: s3.environment
        )
        defer { kill(agent.process.processIdentifier, SIGKILL) }  // a failed expectation must not leave it running
        let connection = try database.connect()
        try Self.write(scratch, "terminal/one.log", "one")
        #expect(waitForUploads(connection, atLeast: 1) == 1)

        try scratch.write("agent.yaml", "project: { name: [unclosed\n")
        kill(agent.process.processIdentifier, SIGHUP)
        Thread.sleep(forTimeInterval: 1)
        try Self.write(scratch, "terminal/two.log", "two")
        #expect(waitForUploads(connection, atLeast: 2) == 2, "still running on the old configuration")

        kill(agent.process.processIdentifier, SIGTERM)
        let result = agent.wait()
        #expect(result.status == 0)
        #expect(result.stderr.contains("configuration not reloaded; keeping the running one"))
        #expect(result.stderr.contains("agent stopped"))
        #expect(
            try connection.execute("SELECT count(*) FROM sync_sessions WHERE status = 'running'").int(0, 0) == 0
        )
    }

    @Test func agentKilledMidUploadRestartsWithNothingLostAndNothingUploadedTwice() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()  // migrated before the test queries it
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let sources = ["terminal", "ros", "syslog", "ros2"]
        let config = try Self.agentConfig(
            scratch,
            s3,
            sources: sources,
            agent: "stability_seconds: 0.3, upload_on_start: true"
        )
        let arguments = ["run", "--config", config, "--database", database.url]
        var expected: [String: String] = [:]
        func writeBatch(_ batch: Int, files: Int) throws {
            for index in 0..<files {
                let source = sources[index % sources.count]
                let path = "\(source)/batch\(batch)/file-\(index).log"
                let text = "batch \(batch) file \(index) " + String(repeating: "z", count: index * 37 % 3000)
                try Self.write(scratch, path, text)
                expected[path] = text
            }
        }

        // Written before the agent starts, so one run takes them all and the kill surely lands inside it.
        try writeBatch(1, files: 1500)
        var agent = try CLI.start("master", arguments, environment: s3.environment)
        defer { kill(agent.process.processIdentifier, SIGKILL) }  // a failed expectation must not leave it running
        let connection = try database.connect()
        // Kill it in the middle of a run: a session open and some of its files recorded uploaded.
        let midRun = try eventually {
            try connection.execute(
                """
                SELECT count(*) FROM sync_sessions AS s
                WHERE s.status = 'running'
                  AND (SELECT count(*) FROM file_uploads AS f WHERE f.session_id = s.id AND f.status = 'uploaded') > 0
                """
            ).int(0, 0) == 1
        }
        #expect(midRun)
        kill(agent.process.processIdentifier, SIGKILL)
        let killedSession = try connection.execute("SELECT id FROM sync_sessions WHERE status = 'running'").int(0, 0)
        _ = agent.wait()
        try writeBatch(2, files: 200)  // written while no agent runs

        agent = try CLI.start("master", arguments, environment: s3.environment)
        #expect(waitForUploads(connection, atLeast: expected.count) >= expected.count)
        kill(agent.process.processIdentifier, SIGTERM)
        #expect(agent.wait().status == 0)

        // Every file once in the bucket, byte for byte, read back by another client.
        let day = Timestamp(Date()).calendarDate(offsetSeconds: 0)
        let objects = try bucketContents(s3)
        #expect(objects.count == expected.count)
        for (path, text) in expected {
            let source = String(path.prefix { $0 != "/" })
            let key = "\(s3.prefix)vehicle-9/\(day)/\(source)/\(path.dropFirst(source.count + 1))"
            #expect(objects[key]?.1 == SHA256.hex(of: Array(text.utf8)), "\(key)")
        }
        // The ledger agrees: one uploaded row per key, nothing left uploading, the killed session closed.
        let twice = try connection.execute(
            "SELECT count(*) FROM (SELECT s3_key FROM file_uploads WHERE status = 'uploaded' GROUP BY s3_key HAVING count(*) > 1) d"
        )
        #expect(twice.int(0, 0) == 0)
        #expect(
            try connection.execute("SELECT count(DISTINCT s3_key) FROM file_uploads WHERE status = 'uploaded'")
                .int(0, 0) == expected.count
        )
        #expect(try connection.execute("SELECT count(*) FROM file_uploads WHERE status = 'uploading'").int(0, 0) == 0)
        #expect(try connection.execute("SELECT count(*) FROM sync_sessions WHERE status = 'running'").int(0, 0) == 0)
        // The kill did land mid-run: the killed session was found and closed at the restart. (A run the final
        // SIGTERM stopped is closed `interrupted` too.)
        let statuses = try connection.execute(
            "SELECT string_agg(id || ' ' || status, ', ' ORDER BY id) FROM sync_sessions"
        ).string(0, 0)
        let killed = try connection.execute(
            "SELECT status FROM sync_sessions WHERE id = \(killedSession ?? -1)"
        ).string(0, 0)
        #expect(killed == "interrupted", "sessions: \(statuses ?? "")")
    }

    @Test func checkRefusesABadScheduleNamingTheKey() throws {
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let config = try Self.agentConfig(
            scratch,
            s3,
            sources: ["terminal"],
            agent: "schedule: { every_minutes: 2 }"
        )
        let result = try CLI.run("master", ["run", "--config", config, "--check"], environment: s3.environment)
        #expect(result.status == 2)
        #expect(result.reason.contains("agent.schedule.every_minutes"))
    }
}
