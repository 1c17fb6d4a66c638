import FleetLedger
import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// `trigger` as a user runs it: exit codes, the one-line reasons and `--json`, against the real ledger and a
/// local receiver (`HTTPReceiver`).
struct TriggerCLITests {
    /// A closed session with `uploaded` files uploaded and `failed` failed, recorded with `trigger` in its
    /// configuration.
    private func makeSession(
        _ database: TestDatabase,
        uploaded: Int = 2,
        failed: Int = 0,
        trigger: TriggerSettings? = nil
    ) throws -> Int64 {
        let ledger = try database.ledger()
        let config = FleetConfig(
            project: ProjectSettings(name: "survey"),
            s3: S3Settings(bucket: "fleet-data"),
            source: SourceSettings(path: "/data"),
            trigger: trigger
        )
        let projectID = try ledger.upsertProject(config, region: "us-east-1", endpoint: nil)
        let sessionID = try ledger.openSession(
            kind: "upload",
            projectID: projectID,
            deviceID: try ledger.upsertDevice(name: "rig-1", hostname: "rig-1", agentVersion: "test"),
            configID: try ledger.recordConfig(projectID: projectID, config: config, sourcePath: nil),
            localDirectory: "/data",
            bucket: "fleet-data",
            prefix: ""
        )
        let files = (0..<(uploaded + failed)).map { index in
            PlannedFile(
                source: "data",
                localPath: "/data/f\(index)",
                relativePath: "f\(index)",
                pathBytes: nil,
                bucket: "fleet-data",
                key: "f\(index)",
                size: 10,
                mtime: Timestamp(seconds: 1_763_900_000)
            )
        }
        try ledger.recordFiles(files, sessionID: sessionID, projectID: projectID)
        let outcomes = try ledger.claimFiles(sessionID: sessionID, limit: files.count, worker: "test").map { job in
            UploadOutcome(
                job: job,
                status: job.id > Int64(uploaded) ? .failed : .uploaded,
                attempts: 1,
                startedAt: .now()
            )
        }
        try ledger.recordOutcomes(outcomes, sessionID: sessionID)
        _ = try ledger.closeSession(sessionID, status: failed == 0 ? .completed : .completedWithErrors)
        return sessionID
    }

    private func eventCount(_ database: TestDatabase) throws -> Int {
        try database.connect().execute("SELECT count(*) FROM trigger_events").int(0, 0) ?? -1
    }

    @Test func deliveredExitsZeroWithOneLine() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let sessionID = try makeSession(database)
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }

        let result = try CLI.run(
            "trigger",
            ["--session", String(sessionID), "--url", receiver.url, "--database", database.url]
        )

        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("session \(sessionID): delivered to \(receiver.url) (HTTP 200, attempt 1, "))
        #expect(result.stdout.split(separator: "\n").count == 1)
        #expect(try receiver.requests().count == 1)
        #expect(try eventCount(database) == 1)
    }

    @Test func withKeysListsTheUploadedKeys() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let sessionID = try makeSession(database, uploaded: 3, failed: 1)
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }

        let result = try CLI.run(
            "trigger",
            [
                "--session", String(sessionID), "--url", receiver.url, "--with-keys", "--json", "--database",
                database.url,
            ]
        )

        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["keys"] as? Int == 3)
        let request = try #require(try receiver.requests().first)
        #expect(try request.document()["keys"] as? [String] == ["f0", "f1", "f2"])
    }

    @Test func jsonReportsTheResultAndTheURLComesFromTheSessionsConfiguration() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let receiver = try HTTPReceiver(statuses: [500, 200])
        defer { receiver.stop() }
        let sessionID = try makeSession(
            database,
            trigger: TriggerSettings(url: receiver.url, backoffBaseSeconds: 0.01, backoffCapSeconds: 0.05)
        )

        let result = try CLI.run("trigger", ["--session", String(sessionID), "--json", "--database", database.url])

        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["session_id"] as? Int == Int(sessionID))
        #expect(json["outcome"] as? String == "delivered")
        #expect(json["attempts"] as? Int == 2)
        #expect(json["http_status"] as? Int == 200)
        #expect(json["url"] as? String == receiver.url)
        #expect(try eventCount(database) == 2)
    }

    @Test func configFileGivesURLAndHeadersWithVariablesFromTheEnvironment() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let sessionID = try makeSession(database)
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let config = try scratch.write(
            "pipeline.yaml",
            """
            project: { name: survey }
            s3: { bucket: fleet-data }
            source: { path: /data }
            trigger:
              url: \(receiver.url)
              headers: ["Authorization: Bearer ${DOWNSTREAM_TOKEN}"]
            """
        )

        let result = try CLI.run(
            "trigger",
            ["--session", String(sessionID), "--config", config, "--header", "X-Run: 7", "--database", database.url],
            environment: ["DOWNSTREAM_TOKEN": "tok-123"]
        )

        #expect(result.status == 0, "\(result.stderr)")
        let request = try #require(try receiver.requests().first)
        #expect(request.header("Authorization") == "Bearer tok-123")
        #expect(request.header("X-Run") == "7")
    }

    @Test func onlyIfCompleteRefusesASessionWithFailuresAndExitsOne() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let sessionID = try makeSession(database, uploaded: 2, failed: 1)
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }

        let result = try CLI.run(
            "trigger",
            [
                "--session", String(sessionID), "--url", receiver.url, "--only-if", "complete", "--database",
                database.url,
            ]
        )

        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.reason == "trigger: session \(sessionID): not sent: 1 file failed (only-if complete)")
        #expect(try receiver.requests().isEmpty)
        #expect(try eventCount(database) == 0)
    }

    @Test func clientErrorExitsThreeWithTheAnswer() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let sessionID = try makeSession(database)
        let receiver = try HTTPReceiver(statuses: [404], body: "unknown hook")
        defer { receiver.stop() }

        let result = try CLI.run(
            "trigger",
            ["--session", String(sessionID), "--url", receiver.url, "--database", database.url]
        )

        #expect(result.status == 3)
        #expect(
            result.reason
                == "trigger: session \(sessionID): not delivered to \(receiver.url): HTTP 404, not retried: unknown hook"
        )
        #expect(try receiver.requests().count == 1)
    }

    @Test func unreachableEndpointExitsThreeAfterEveryAttempt() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let sessionID = try makeSession(
            database,
            trigger: TriggerSettings(backoffBaseSeconds: 0.01, backoffCapSeconds: 0.05)
        )
        let url = "http://127.0.0.1:\(try unusedPort())/hook"

        let result = try CLI.run(
            "trigger",
            ["--session", String(sessionID), "--url", url, "--attempts", "2", "--json", "--database", database.url]
        )

        #expect(result.status == 3)
        // Each retry is logged (notice) before the reason, which comes last.
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(
            lines.last?.hasPrefix("trigger: session \(sessionID): not delivered to \(url): no success in 2 attempts")
                == true
        )
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(json["outcome"] as? String == "failed")
        #expect(json["attempts"] as? Int == 2)
        #expect(try eventCount(database) == 2)
    }

    @Test func usageProblemsExitTwoWithAReason() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let sessionID = String(try makeSession(database))
        let url = "http://127.0.0.1:9/hook"
        let cases: [([String], String)] = [
            (["--session", "424242", "--url", url], "trigger: no session 424242 in the ledger at "),
            (["--session", sessionID], "trigger: no endpoint: give --url, or set trigger.url in the configuration"),
            (["--session", sessionID, "--url", url, "--attempts", "0"], "trigger.max_attempts (from command line)"),
            (["--session", sessionID, "--url", url, "--only-if", "sometimes"], "trigger.only_if (from command line)"),
            (["--session", sessionID, "--url", "ftp://x/"], "trigger.url (from command line)"),
            (["--session", sessionID, "--url", url, "--header", "X-Key: ${NOT_SET_HERE}"], "NOT_SET_HERE is not set"),
            (["--session", "twelve", "--url", url], "Error: The value 'twelve' is invalid for '--session <id>'"),
            (["--url", url], "Error: Missing expected argument '--session <id>'"),
        ]

        for (arguments, reason) in cases {
            let result = try CLI.run("trigger", arguments + ["--database", database.url])
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.reason.contains(reason), "\(arguments): \(result.reason)")
        }
        #expect(try eventCount(database) == 0)
    }

    @Test func helpExplainsThePayloadAndTheExitCodes() throws {
        let result = try CLI.run("trigger", ["--help"])

        #expect(result.status == 0)
        for text in [
            "--session", "--url", "--header", "--timeout", "--attempts", "--only-if", "--with-keys", "--config",
            "--json",
            "--database", "session_id", "bucket_name", "s3_prefix", "total_files", "files_uploaded", "total_size_bytes",
            "local_directory", "finished_at", "trigger_events", "Exit codes: 0 delivered",
        ] {
            #expect(result.stdout.contains(text), "\(text)")
        }
    }

    // MARK: - Retry-After and Idempotency-Key

    /// 503 and 429 with `Retry-After: 1` are waited out for a second each though the backoff would wait
    /// milliseconds; every request of the delivery carries the same Idempotency-Key, and a later `trigger` of
    /// the same session is the next delivery with a new key.
    @Test func retryAfterIsHonouredAndOneDeliveryKeepsOneIdempotencyKey() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let receiver = try HTTPReceiver(statuses: [503, 429, 200], retryAfter: ["1", "1", ""])
        defer { receiver.stop() }
        let sessionID = try makeSession(
            database,
            trigger: TriggerSettings(url: receiver.url, backoffBaseSeconds: 0.01, backoffCapSeconds: 5)
        )

        let first = try CLI.run("trigger", ["--session", String(sessionID), "--database", database.url])
        let second = try CLI.run("trigger", ["--session", String(sessionID), "--database", database.url])

        #expect(first.status == 0, "\(first.stderr)")
        #expect(second.status == 0, "\(second.stderr)")
        let requests = try receiver.requests()
        #expect(requests.map(\.status) == [503, 429, 200, 200])
        #expect(requests[1].at - requests[0].at >= 0.95)
        #expect(requests[2].at - requests[1].at >= 0.95)
        #expect(
            requests.map { $0.header("Idempotency-Key") ?? "" } == Array(repeating: "\(sessionID)-1", count: 3) + [
                "\(sessionID)-2"
            ]
        )
        let rows = try database.connect().execute(
            "SELECT delivery, attempt, succeeded FROM trigger_events ORDER BY id"
        )
        let recorded = (0..<rows.rowCount).map {
            "\(rows.int($0, 0) ?? 0).\(rows.int($0, 1) ?? 0) \(rows.bool($0, 2) ?? false)"
        }
        #expect(recorded == ["1.1 false", "1.2 false", "1.3 true", "2.1 true"])
    }

    /// A `Retry-After` date an hour away is cut to the configured cap: the run does not stall.
    @Test func retryAfterBeyondTheCapWaitsOnlyTheCap() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let anHourAway = formatter.string(from: Date().addingTimeInterval(3_600))
        let receiver = try HTTPReceiver(statuses: [503, 200], retryAfter: [anHourAway, ""])
        defer { receiver.stop() }
        let sessionID = try makeSession(
            database,
            trigger: TriggerSettings(url: receiver.url, backoffBaseSeconds: 0.01, backoffCapSeconds: 0.5)
        )

        let result = try CLI.run("trigger", ["--session", String(sessionID), "--database", database.url])

        #expect(result.status == 0, "\(result.stderr)")
        let requests = try receiver.requests()
        #expect(requests.map(\.status) == [503, 200])
        let gap = requests[1].at - requests[0].at
        #expect(gap >= 0.45 && gap < 3, "waited \(gap) s")
    }
}
