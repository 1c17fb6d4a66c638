import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// `master once`: upload, retry rounds, trigger, as one unit with one exit code.
struct MasterOnceCLITests {
    /// The example configuration, copied with sample data beside it as the demo lays it out, pointed at the
    /// test server and a local receiver.
    @Test func exampleConfigExitsZeroAndItsSummaryMatchesMasterStatus() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
            .standardizedFileURL
        let config = scratch.url.appendingPathComponent("examples/session.json")
        try FileManager.default.createDirectory(
            at: config.deletingLastPathComponent(),
            withIntermediateDirectories: true
        )
        try FileManager.default.copyItem(at: root.appendingPathComponent("examples/session.json"), to: config)
        let sample = try CLI.runTool(
            "/usr/bin/env",
            [
                "python3", root.appendingPathComponent("scripts/sample-data.py").path,
                scratch.url.appendingPathComponent(".demo/sample-data").path, "--files", "60", "--size", "2000",
            ]
        )
        #expect(sample.status == 0, "\(sample.stderr)")

        let once = try CLI.run(
            "master",
            [
                "once", "--config", config.path, "--endpoint", s3.endpoint, "--bucket", s3.bucket, "--prefix",
                String(s3.prefix.dropLast()), "--url", receiver.url, "--json", "--database", database.url,
            ],
            environment: s3.environment
        )

        #expect(once.status == 0, "\(once.stderr)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(once.stdout.utf8)) as? [String: Any])
        let session = try #require(document["session"] as? [String: Any])
        let sessionID = try #require(session["session_id"] as? Int)
        #expect(session["status"] as? String == "completed")
        #expect(session["kind"] as? String == "once")
        #expect((session["files_uploaded"] as? Int ?? 0) > 0)
        #expect(document["retry"] == nil || document["retry"] is NSNull)
        let trigger = try #require(document["trigger"] as? [String: Any])
        #expect(trigger["outcome"] as? String == "delivered")
        let requests = try receiver.requests()
        #expect(requests.count == 1)
        #expect(try requests.first?.document()["session_id"] as? Int == sessionID)

        let status = try CLI.run(
            "master",
            ["status", "--session", String(sessionID), "--json", "--database", database.url]
        )
        #expect(status.status == 0, "\(status.stderr)")
        let shown = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        for (key, value) in session {
            #expect("\(shown[key] ?? "missing")" == "\(value)", "\(key)")
        }
        #expect(try bucketContents(s3).count == session["files_uploaded"] as? Int)
    }

    /// Files failed by an outage during the upload are finished by the retry rounds of the same cycle.
    @Test func outageDuringTheUploadIsFinishedByTheRetryRounds() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let proxy = try OutageProxy(target: s3.endpoint)
        for index in 0..<800 { try scratch.write("data/f\(index).bin", "once-\(index)") }
        let config = try configFile(
            scratch,
            s3,
            upload: outageUploadSettings,
            endpoint: proxy.endpoint,
            sections: #""retry": { "rounds": 20, "round_backoff_base_seconds": 0.5, "round_backoff_cap_seconds": 0.5 }"#
        )

        let run = try CLI.start(
            "master",
            ["once", "--config", config, "--json", "--database", database.url],
            environment: s3.environment
        )
        let connection = try database.connect()
        #expect(waitForUploads(connection, atLeast: 50) >= 50)
        try proxy.down()
        // Back once the upload has given up and closed the session: the retry rounds find the store down first.
        for _ in 0..<600 {
            if try connection.execute("SELECT status FROM sync_sessions").string(0, 0) != "running" { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        Thread.sleep(forTimeInterval: 1)
        try proxy.up()
        let result = run.wait()

        #expect(result.status == 0, "\(result.stderr)")
        let document = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let session = try #require(document["session"] as? [String: Any])
        #expect(session["status"] as? String == "completed")
        #expect(session["files_uploaded"] as? Int == 800)
        let retry = try #require(document["retry"] as? [String: Any])
        #expect(retry["ending"] as? String == "all_uploaded")
        #expect(try bucketContents(s3).count == 800)
    }

    /// A trigger the endpoint did not take (500 on both attempts) is announced again by the next `master once`,
    /// after that run's own session, as the session's second delivery with a new Idempotency-Key.
    @Test func failedTriggerIsDeliveredByTheNextRun() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let receiver = try HTTPReceiver(statuses: [500, 500, 200])
        defer { receiver.stop() }
        try scratch.write("data/a.bin", "first")
        let config = try configFile(
            scratch,
            s3,
            sections: """
                "trigger": { "url": "\(receiver.url)", "max_attempts": 2, "backoff_base_seconds": 0.01,
                             "backoff_cap_seconds": 0.05 }
                """
        )
        let arguments = ["once", "--config", config, "--database", database.url]

        let failed = try CLI.run("master", arguments, environment: s3.environment)
        try scratch.write("data/b.bin", "second")
        let next = try CLI.run("master", arguments, environment: s3.environment)

        #expect(failed.status == 3, "\(failed.stderr)")
        #expect(next.status == 0, "\(next.stderr)")
        let first = try #require(Int(failed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let second = try #require(Int(next.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let requests = try receiver.requests()
        #expect(requests.map(\.status) == [500, 500, 200, 200])
        #expect(try requests.map { try $0.document()["session_id"] as? Int } == [first, first, second, first])
        #expect(
            requests.map { $0.header("Idempotency-Key") } == ["\(first)-1", "\(first)-1", "\(second)-1", "\(first)-2"]
        )
        #expect(next.stderr.contains("trigger: session \(first): delivered to \(receiver.url)"))
        let rows = try database.connect().execute(
            "SELECT delivery, attempt, succeeded FROM trigger_events WHERE session_id = \(first) ORDER BY id"
        )
        let recorded = (0..<rows.rowCount).map {
            "\(rows.int($0, 0) ?? 0).\(rows.int($0, 1) ?? 0) \(rows.bool($0, 2) ?? false)"
        }
        #expect(recorded == ["1.1 false", "1.2 false", "2.1 true"])
        #expect(try bucketContents(s3).count == 2)
    }
}
