import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore
@testable import FleetLedger

/// `TriggerDelivery` against the real ledger and a local receiver (`HTTPReceiver`).
struct TriggerTests {
    /// A finished session recorded through the calls `upload` makes: `uploaded` keys uploaded, `failed` keys
    /// failed, `skipped` keys skipped as already stored; every file 100 bytes.
    private func makeSession(
        _ ledger: Ledger,
        uploaded: [String],
        failed: [String] = [],
        skipped: [String] = [],
        close: Bool = true
    ) throws -> Int64 {
        let config = FleetConfig(
            project: ProjectSettings(name: "survey"),
            device: "rig-1",
            s3: S3Settings(bucket: "fleet-data", prefix: "raw"),
            source: SourceSettings(path: "/data/run 1")
        )
        let projectID = try ledger.upsertProject(config, region: "us-east-1", endpoint: nil)
        let deviceID = try ledger.upsertDevice(name: "rig-1", hostname: "rig-1.local", agentVersion: "test")
        let configID = try ledger.recordConfig(projectID: projectID, config: config, sourcePath: nil)
        let sessionID = try ledger.openSession(
            kind: "upload",
            projectID: projectID,
            deviceID: deviceID,
            configID: configID,
            localDirectory: "/data/run 1",
            bucket: "fleet-data",
            prefix: "raw"
        )
        let mtime = Timestamp(seconds: 1_763_900_000)
        for key in skipped {
            try ledger.connection.execute(
                """
                INSERT INTO stored_objects (project_id, bucket, s3_key, size_bytes, mtime)
                VALUES (\(projectID), 'fleet-data', \(key), 100, \(mtime)::timestamptz)
                """
            )
        }
        let files = (uploaded + failed + skipped).map { key in
            PlannedFile(
                source: "run",
                localPath: "/data/run 1/" + key,
                relativePath: key,
                pathBytes: nil,
                bucket: "fleet-data",
                key: key,
                size: 100,
                mtime: mtime
            )
        }
        try ledger.recordFiles(files, sessionID: sessionID, projectID: projectID)
        let failing = Set(failed)
        let outcomes = try ledger.claimFiles(sessionID: sessionID, limit: files.count, worker: "test").map { job in
            var outcome = UploadOutcome(
                job: job,
                status: failing.contains(job.key) ? .failed : .uploaded,
                attempts: 1,
                startedAt: .now()
            )
            if failing.contains(job.key) { outcome.errorClass = "network" }
            return outcome
        }
        try ledger.recordOutcomes(outcomes, sessionID: sessionID)
        if close { _ = try ledger.closeSession(sessionID, status: failed.isEmpty ? .completed : .completedWithErrors) }
        return sessionID
    }

    private func deliver(
        _ sessionID: Int64,
        _ ledger: Ledger,
        _ settings: TriggerSettings,
        environment: [String: String] = [:],
        keyPageSize: Int? = nil
    ) throws -> TriggerResult {
        var settings = settings
        settings.backoffBaseSeconds = settings.backoffBaseSeconds ?? 0.01
        settings.backoffCapSeconds = settings.backoffCapSeconds ?? 0.05
        var options = try TriggerOptions(settings: settings)
        if let keyPageSize { options.keyPageSize = keyPageSize }
        return try TriggerDelivery(options: options, environment: environment, logger: quietLogger)
            .deliver(sessionID: sessionID, ledger: ledger)
    }

    /// The session's `trigger_events`, in attempt order.
    private func events(_ ledger: Ledger, _ sessionID: Int64) throws -> [TriggerEvent] {
        let rows = try ledger.connection.execute(
            """
            SELECT url, attempt, http_status, latency_ms, succeeded, error_message, response_excerpt
            FROM trigger_events WHERE session_id = \(sessionID) ORDER BY attempt
            """
        )
        return (0..<rows.rowCount).map { row in
            TriggerEvent(
                sessionID: sessionID,
                url: rows.string(row, 0) ?? "",
                attempt: rows.int(row, 1) ?? 0,
                httpStatus: rows.int(row, 2),
                latencyMs: rows.int(row, 3),
                succeeded: rows.bool(row, 4) ?? false,
                errorMessage: rows.string(row, 5),
                responseExcerpt: rows.string(row, 6)
            )
        }
    }

    @Test func deliversTheDocumentedSummary() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let sessionID = try makeSession(
            ledger,
            uploaded: ["a/one.wav", "a/two.wav", "b/three.jpg"],
            failed: ["c/broken.mp4"],
            skipped: ["old.wav"]
        )
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }

        let result = try deliver(sessionID, ledger, TriggerSettings(url: receiver.url))

        #expect(result.outcome == .delivered)
        #expect(result.attempts == 1)
        #expect(result.httpStatus == 200)
        let requests = try receiver.requests()
        try #require(requests.count == 1)
        let request = requests[0]
        #expect(request.method == "POST")
        #expect(request.path == "/hooks/session-done")
        #expect(request.header("Content-Type") == "application/json")
        #expect(request.header("User-Agent") == "fleet-upload/\(FleetVersion.number)")
        #expect(Int64(request.header("Content-Length") ?? "") == result.payloadBytes)
        let record = try #require(try ledger.session(sessionID))
        let document = try request.document()
        #expect(document["session_id"] as? Int == Int(sessionID))
        #expect(document["bucket_name"] as? String == "fleet-data")
        #expect(document["s3_prefix"] as? String == "raw")
        #expect(document["total_files"] as? Int == 5)
        #expect(document["files_uploaded"] as? Int == 3)
        #expect(document["total_size_bytes"] as? Int == 500)
        #expect(document["local_directory"] as? String == "/data/run 1")
        #expect(document["project"] as? String == "survey")
        #expect(document["device"] as? String == "rig-1")
        #expect(document["kind"] as? String == "upload")
        #expect(document["status"] as? String == "completed_with_errors")
        #expect(document["files_skipped"] as? Int == 1)
        #expect(document["files_failed"] as? Int == 1)
        #expect(document["bytes_uploaded"] as? Int == 300)
        #expect(document["started_at"] as? String == record.startedAt.rfc3339)
        #expect(document["finished_at"] as? String == record.finishedAt?.rfc3339)
        #expect(document["keys"] == nil)
        let recorded = try events(ledger, sessionID)
        #expect(recorded.map(\.httpStatus) == [200])
        #expect(recorded.map(\.succeeded) == [true])
        #expect(recorded.first?.url == receiver.url)
        #expect(recorded.first?.responseExcerpt == #"{"status": 200}"#)
    }

    @Test func serverErrorsAreRetriedWithTheSameBodyUntilOneSucceeds() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let sessionID = try makeSession(ledger, uploaded: ["one.wav"])
        let receiver = try HTTPReceiver(statuses: [500, 500, 200])
        defer { receiver.stop() }

        let result = try deliver(sessionID, ledger, TriggerSettings(url: receiver.url))

        #expect(result.outcome == .delivered)
        #expect(result.attempts == 3)
        let requests = try receiver.requests()
        #expect(requests.count == 3)
        #expect(Set(requests.map(\.body)).count == 1)
        let recorded = try events(ledger, sessionID)
        #expect(recorded.map(\.attempt) == [1, 2, 3])
        #expect(recorded.map(\.httpStatus) == [500, 500, 200])
        #expect(recorded.map(\.succeeded) == [false, false, true])
        #expect(recorded.first?.responseExcerpt == #"{"status": 500}"#)
        #expect(recorded.allSatisfy { ($0.latencyMs ?? -1) >= 0 && $0.errorMessage == nil })
    }

    @Test func clientErrorIsFinalAfterOneRequest() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let sessionID = try makeSession(ledger, uploaded: ["one.wav"])
        let receiver = try HTTPReceiver(statuses: [404], body: "no such hook\nsecond line")
        defer { receiver.stop() }

        let result = try deliver(sessionID, ledger, TriggerSettings(url: receiver.url))

        #expect(result.outcome == .failed)
        #expect(result.attempts == 1)
        #expect(result.httpStatus == 404)
        #expect(result.reason == "HTTP 404, not retried: no such hook")
        #expect(try receiver.requests().count == 1)
        let recorded = try events(ledger, sessionID)
        #expect(recorded.map(\.httpStatus) == [404])
        #expect(recorded.map(\.succeeded) == [false])
        #expect(recorded.first?.responseExcerpt == "no such hook\nsecond line")
    }

    @Test func unreachableEndpointUsesEveryAttemptAndRecordsTheError() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let sessionID = try makeSession(ledger, uploaded: ["one.wav"])
        let url = "http://127.0.0.1:\(try unusedPort())/hook"

        let result = try deliver(sessionID, ledger, TriggerSettings(url: url, maxAttempts: 3))

        #expect(result.outcome == .failed)
        #expect(result.attempts == 3)
        #expect(result.httpStatus == nil)
        #expect(result.reason?.hasPrefix("no success in 3 attempts; last: connect:") == true, "\(result.reason ?? "")")
        let recorded = try events(ledger, sessionID)
        #expect(recorded.map(\.attempt) == [1, 2, 3])
        #expect(recorded.allSatisfy { $0.httpStatus == nil && !$0.succeeded })
        #expect(recorded.allSatisfy { $0.errorMessage?.hasPrefix("connect:") == true })
    }

    @Test func slowAnswerTimesOutAndTheNextAttemptSucceeds() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let sessionID = try makeSession(ledger, uploaded: ["one.wav"])
        let receiver = try HTTPReceiver(statuses: [200], delays: [3, 0])
        defer { receiver.stop() }

        let result = try deliver(sessionID, ledger, TriggerSettings(url: receiver.url, timeoutSeconds: 1))

        #expect(result.outcome == .delivered)
        #expect(result.attempts == 2)
        let recorded = try events(ledger, sessionID)
        #expect(recorded.map(\.httpStatus) == [nil, 200])
        #expect(recorded.first?.errorMessage?.hasPrefix("timeout:") == true, "\(recorded.first?.errorMessage ?? "")")
        #expect((recorded.first?.latencyMs ?? 0) >= 900)
    }

    @Test func withKeysSendsEveryUploadedKeyOnceInRecordedOrder() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let uploaded = (0..<25_000).map { "set/\($0 % 50)/frame \($0).jpg" }
        let sessionID = try makeSession(
            ledger,
            uploaded: uploaded,
            failed: ["bad/1.jpg", "bad/2.jpg"],
            skipped: ["old.jpg"]
        )
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }

        let result = try deliver(
            sessionID,
            ledger,
            TriggerSettings(url: receiver.url, withKeys: true),
            keyPageSize: 1_000
        )

        #expect(result.outcome == .delivered)
        #expect(result.keys == 25_000)
        let requests = try receiver.requests()
        try #require(requests.count == 1)
        let keys = try #require(try requests[0].document()["keys"] as? [String])
        #expect(keys.count == 25_000)
        #expect(keys == uploaded)
    }

    @Test func onlyIfCompleteRefusesASessionWithFailuresWithoutARequest() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let sessionID = try makeSession(ledger, uploaded: ["one.wav"], failed: ["two.wav"])
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }

        let result = try deliver(sessionID, ledger, TriggerSettings(url: receiver.url, onlyIf: "complete"))

        #expect(result.outcome == .refused)
        #expect(result.attempts == 0)
        #expect(result.reason == "1 file failed (only-if complete)")
        #expect(try receiver.requests().isEmpty)
        #expect(try events(ledger, sessionID).isEmpty)
    }

    @Test func runningSessionIsRefused() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let sessionID = try makeSession(ledger, uploaded: ["one.wav"], close: false)
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }

        let result = try deliver(sessionID, ledger, TriggerSettings(url: receiver.url))

        #expect(result.outcome == .refused)
        #expect(result.reason?.hasPrefix("the session is still running") == true)
        #expect(try receiver.requests().isEmpty)
    }

    @Test func headerSecretsFromTheEnvironmentArriveButAreNeverRecorded() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let sessionID = try makeSession(ledger, uploaded: ["one.wav"])
        let receiver = try HTTPReceiver(statuses: [503, 200])
        defer { receiver.stop() }
        let withUser = receiver.url.replacingOccurrences(of: "http://", with: "http://robot:pa55word@")

        let result = try deliver(
            sessionID,
            ledger,
            TriggerSettings(url: withUser, headers: ["X-Api-Key: ${TRIGGER_TEST_TOKEN}"]),
            environment: ["TRIGGER_TEST_TOKEN": "t0ken-value"]
        )

        #expect(result.outcome == .delivered)
        #expect(result.url == receiver.url)
        let requests = try receiver.requests()
        #expect(requests.map { $0.header("X-Api-Key") } == ["t0ken-value", "t0ken-value"])
        #expect(requests.first?.header("Authorization") == "Basic " + Data("robot:pa55word".utf8).base64EncodedString())
        let leaks = try ledger.connection.execute(
            """
            SELECT count(*) FROM trigger_events
            WHERE trigger_events::text LIKE '%t0ken-value%' OR trigger_events::text LIKE '%pa55word%'
            """
        )
        #expect(leaks.int(0, 0) == 0)
        #expect(try events(ledger, sessionID).map(\.url) == [receiver.url, receiver.url])
    }

    @Test func unsetHeaderVariableSendsNothing() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let sessionID = try makeSession(ledger, uploaded: ["one.wav"])
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }

        let error = #expect(throws: ConfigError.self) {
            try deliver(sessionID, ledger, TriggerSettings(url: receiver.url, headers: ["X-Api-Key: ${UNSET_TOKEN}"]))
        }

        #expect(error?.description.contains("UNSET_TOKEN") == true)
        #expect(try receiver.requests().isEmpty)
        #expect(try events(ledger, sessionID).isEmpty)
    }

    @Test func unknownSessionIsAnError() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()

        let error = #expect(throws: TriggerError.self) {
            try deliver(999, ledger, TriggerSettings(url: "http://127.0.0.1:9/"))
        }

        #expect(error?.kind == .unknownSession)
    }

    // MARK: - Deliveries

    private func record(
        _ ledger: Ledger,
        _ sessionID: Int64,
        delivery: Int,
        succeeded: Bool,
        url: String = "http://127.0.0.1:9/hook"
    ) throws {
        try ledger.recordTriggerEvent(
            TriggerEvent(
                sessionID: sessionID,
                url: url,
                delivery: delivery,
                attempt: 1,
                latencyMs: 1,
                succeeded: succeeded
            )
        )
    }

    /// A later run announces again only the project's sessions whose every request to its URL failed, with
    /// fewer than the maximum deliveries, whose first request is younger than the age limit; the others are
    /// delivered, given up, or were announced elsewhere.
    @Test func onlyFailedSessionsWithinTheLimitsAreAnnouncedAgain() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let current = try makeSession(ledger, uploaded: ["c.wav"])
        let failedOnce = try makeSession(ledger, uploaded: ["a.wav"])
        let delivered = try makeSession(ledger, uploaded: ["b.wav"])
        let givenUp = try makeSession(ledger, uploaded: ["d.wav"])
        let tooOld = try makeSession(ledger, uploaded: ["e.wav"])
        let neverSent = try makeSession(ledger, uploaded: ["f.wav"])
        let elsewhere = try makeSession(ledger, uploaded: ["g.wav"])
        try record(ledger, elsewhere, delivery: 1, succeeded: false, url: "http://127.0.0.1:9/other")
        try record(ledger, current, delivery: 1, succeeded: false)
        try record(ledger, failedOnce, delivery: 1, succeeded: false)
        try record(ledger, delivered, delivery: 1, succeeded: false)
        try record(ledger, delivered, delivery: 2, succeeded: true)
        for delivery in 1...TriggerDelivery.maximumDeliveries {
            try record(ledger, givenUp, delivery: delivery, succeeded: false)
        }
        try record(ledger, tooOld, delivery: 1, succeeded: false)
        try ledger.connection.execute(
            "UPDATE trigger_events SET created_at = now() - interval '73 hours' WHERE session_id = \(tooOld)"
        )

        let pending = try ledger.undeliveredTriggers(
            projectOf: current,
            url: "http://127.0.0.1:9/hook",
            maximumDeliveries: TriggerDelivery.maximumDeliveries,
            maximumAgeSeconds: TriggerDelivery.maximumAgeSeconds,
            limit: TriggerDelivery.redeliveriesPerRun
        )

        #expect(pending == [failedOnce])
        #expect(try ledger.nextTriggerDelivery(sessionID: neverSent) == 1)
        #expect(try ledger.nextTriggerDelivery(sessionID: failedOnce) == 2)
        #expect(try ledger.nextTriggerDelivery(sessionID: givenUp) == TriggerDelivery.maximumDeliveries + 1)
    }

    /// Requests recorded before deliveries existed are numbered when the ledger is upgraded: each attempt 1
    /// starts the next delivery of its session.
    @Test func upgradeNumbersTheDeliveriesOfEarlierRequests() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let first = try makeSession(ledger, uploaded: ["a.wav"])
        let second = try makeSession(ledger, uploaded: ["b.wav"])
        let migration = try #require(Migration.all.first { $0.name == "trigger_deliveries" })
        let connection = try database.connect()
        try connection.execute("ALTER TABLE trigger_events DROP COLUMN delivery")
        try connection.execute("DELETE FROM schema_migrations WHERE version = \(migration.version)")
        for (session, attempt) in [(first, 1), (first, 2), (second, 1), (first, 1), (second, 1), (second, 2)] {
            try connection.execute(
                """
                INSERT INTO trigger_events (session_id, url, attempt, succeeded)
                VALUES (\(session), 'http://127.0.0.1:9/hook', \(attempt), false)
                """
            )
        }

        _ = try database.ledger()

        let rows = try connection.execute("SELECT session_id, delivery FROM trigger_events ORDER BY id")
        let numbered = (0..<rows.rowCount).map { [Int64(rows.int($0, 0) ?? 0), Int64(rows.int($0, 1) ?? 0)] }
        #expect(numbered == [[first, 1], [first, 1], [second, 1], [first, 2], [second, 2], [second, 2]])
    }
}
