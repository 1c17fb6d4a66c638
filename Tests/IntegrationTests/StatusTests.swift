import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore
@testable import FleetLedger

struct StatusTests {
    // MARK: - Fleet

    @Test func emptyLedgerHasNoSessionsProjectsOrDevices() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        let status = try database.ledger().fleetStatus(StatusFilter())

        #expect(status.sessions.isEmpty)
        #expect(status.failuresByClass.isEmpty)
        #expect(status.projects.isEmpty)
        #expect(status.devices.isEmpty)
    }

    @Test func countsTheServerConnectionsToTheLedgerByApplication() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let url = try database.directURL()
        let probes = try (0..<2).map { _ in try PGConnection(conninfo: url, applicationName: "fleet-status-probe") }
        try probes[0].executeScript("BEGIN")

        let status = try ledger.fleetStatus(StatusFilter())

        let probe = try #require(status.connections.first { $0.application == "fleet-status-probe" })
        #expect(
            probe
                == FleetStatus.Connections(
                    application: "fleet-status-probe",
                    total: 2,
                    active: 0,
                    idleInTransaction: 1,
                    idle: 1
                )
        )
        #expect(!status.connections.contains { $0.application == PGConnection.applicationName && $0.total > 0 })
        try probes[0].executeScript("ROLLBACK")
    }

    @Test func listsSessionsNewestFirstWithTheTotalsTheyClosedWith() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try LedgerFixture(database)
        let first = try fleet.session(project: "survey", device: "rig-1", uploaded: 3)
        let second = try fleet.session(
            project: "mapping",
            device: "rig-2",
            uploaded: 2,
            failed: [.network, .network],
            rejected: 1
        )

        let status = try fleet.ledger.fleetStatus(StatusFilter())

        #expect(status.sessions.map(\.id) == [second, first])
        let newest = try #require(status.sessions.first)
        #expect(newest.project == "mapping")
        #expect(newest.device == "rig-2")
        #expect(newest.kind == "upload")
        #expect(newest.status == .completedWithErrors)
        #expect(newest.finishedAt != nil)
        #expect(
            newest.totals
                == FleetStatus.Totals(
                    files: 5,
                    bytes: 5000,
                    uploadedFiles: 2,
                    uploadedBytes: 2000,
                    skippedFiles: 0,
                    skippedBytes: 0,
                    failedFiles: 3
                )
        )
        #expect(status.sessions.last?.status == .completed)
        #expect(status.sessions.last?.totals?.uploadedFiles == 3)
        for session in status.sessions {
            #expect(session.durationSeconds > 0)
            #expect(session.filesPerSecond.map { $0 > 0 } == true)
            #expect(session.bytesPerSecond.map { $0 > 0 } == true)
        }
    }

    @Test func limitProjectAndDeviceNarrowTheList() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try LedgerFixture(database)
        let a = try fleet.session(project: "survey", device: "rig-1", uploaded: 1)
        let b = try fleet.session(project: "survey", device: "rig-2", uploaded: 1)
        let c = try fleet.session(project: "mapping", device: "rig-1", uploaded: 1)
        let d = try fleet.session(project: "survey", device: "rig-1", uploaded: 1)
        let ledger = fleet.ledger

        #expect(try ledger.fleetStatus(StatusFilter(limit: 2)).sessions.map(\.id) == [d, c])
        #expect(try ledger.fleetStatus(StatusFilter(project: "survey")).sessions.map(\.id) == [d, b, a])
        #expect(try ledger.fleetStatus(StatusFilter(device: "rig-1")).sessions.map(\.id) == [d, c, a])
        #expect(
            try ledger.fleetStatus(StatusFilter(limit: 1, project: "survey", device: "rig-1")).sessions.map(\.id) == [d]
        )
        let unknown = try ledger.fleetStatus(StatusFilter(project: "nope", device: "nope"))
        #expect(unknown.sessions.isEmpty)
        #expect(unknown.projects.isEmpty)
        #expect(unknown.devices.isEmpty)
    }

    @Test func failuresByClassCoverOnlyTheListedSessions() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try LedgerFixture(database)
        try fleet.session(uploaded: 1, failed: [.throttled, .throttled, .throttled])
        try fleet.session(uploaded: 1, failed: [.network, .network], rejected: 1)
        try fleet.session(uploaded: 4)

        let latestTwo = try fleet.ledger.fleetStatus(StatusFilter(limit: 2))
        let all = try fleet.ledger.fleetStatus(StatusFilter())

        #expect(latestTwo.failuresByClass == ["network": 2, "invalid_key": 1])
        #expect(all.failuresByClass == ["network": 2, "invalid_key": 1, "throttled": 3])
    }

    @Test func runningSessionHasNoTotalsUntilItCloses() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try LedgerFixture(database)
        let running = try fleet.session(uploaded: 2, failed: [.network], close: false)

        let session = try #require(try fleet.ledger.fleetStatus(StatusFilter()).sessions.first)

        #expect(session.id == running)
        #expect(session.status == .running)
        #expect(session.finishedAt == nil)
        #expect(session.totals == nil)
        #expect(session.filesPerSecond == nil)
        #expect(session.bytesPerSecond == nil)
        #expect(try fleet.ledger.fleetStatus(StatusFilter()).failuresByClass == ["network": 1])
    }

    @Test func projectTotalsCountSessionsWithinTheWindow() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try LedgerFixture(database)
        let old = try fleet.session(project: "survey", uploaded: 5, failed: [.network])
        try fleet.session(project: "survey", uploaded: 2, failed: [.throttled])
        let latest = try fleet.session(project: "survey", uploaded: 3)
        try fleet.session(project: "mapping", uploaded: 1)
        try fleet.ledger.connection.execute(
            "UPDATE sync_sessions SET started_at = started_at - interval '40 days' WHERE id = \(old)"
        )
        _ = try fleet.ledger.upsertProject(try fleet.config(project: "idle"), region: "us-east-1", endpoint: nil)
        let latestStart = try #require(try fleet.ledger.session(latest)?.startedAt)

        let status = try fleet.ledger.fleetStatus(StatusFilter(), projectWindowDays: 30)
        let survey = try #require(status.projects.first { $0.name == "survey" })

        #expect(status.projectWindowDays == 30)
        #expect(status.projects.map(\.name) == ["idle", "mapping", "survey"])
        #expect(
            survey
                == FleetStatus.Project(
                    name: "survey",
                    sessions: 2,
                    uploadedFiles: 5,
                    uploadedBytes: 5000,
                    failedFiles: 1,
                    lastSessionAt: latestStart
                )
        )
        #expect(status.projects.first?.sessions == 0)
        #expect(status.projects.first?.lastSessionAt == nil)
        #expect(try fleet.ledger.fleetStatus(StatusFilter(project: "mapping")).projects.map(\.name) == ["mapping"])
    }

    @Test func devicesShowTheirLastHeartbeatAndQueue() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try LedgerFixture(database)
        try fleet.session(device: "rig-1", uploaded: 1)
        try fleet.session(device: "rig-2", uploaded: 1)
        try fleet.ledger.connection.execute(
            """
            UPDATE devices SET last_heartbeat_at = now() - interval '3 minutes', disk_used_percent = 41.5,
                queue_files = 120, queue_bytes = 7340032, last_upload_at = now() - interval '1 hour'
            WHERE name = 'rig-1'
            """
        )

        let status = try fleet.ledger.fleetStatus(StatusFilter())

        #expect(status.devices.map(\.name) == ["rig-1", "rig-2"])
        let reporting = status.devices[0]
        #expect(reporting.hostname == "rig-1.local")
        #expect(reporting.agentVersion == "0.9.0")
        #expect(reporting.diskUsedPercent == 41.5)
        #expect(reporting.queueFiles == 120)
        #expect(reporting.queueBytes == 7_340_032)
        let age = try #require(reporting.heartbeatAgeSeconds)
        #expect(age >= 180 && age < 181)
        let heartbeat = try #require(reporting.lastHeartbeatAt)
        #expect(abs(Double(status.readAt.microseconds - heartbeat.microseconds) / 1_000_000 - age) < 0.001)
        let sinceUpload = reporting.lastUploadAt.map { Double(status.readAt.microseconds - $0.microseconds) / 1e6 }
        #expect(sinceUpload.map { abs($0 - 3600) < 1 } == true)
        let silent = status.devices[1]
        #expect(silent.lastHeartbeatAt == nil)
        #expect(silent.heartbeatAgeSeconds == nil)
        #expect(silent.diskUsedPercent == nil)
        #expect(try fleet.ledger.fleetStatus(StatusFilter(device: "rig-2")).devices.map(\.name) == ["rig-2"])
    }

    // MARK: - One session

    @Test func sessionDetailListsFailedFilesWithTheirLastErrors() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try LedgerFixture(database)
        let id = try fleet.session(uploaded: 3, failed: [.network, .throttled], rejected: 1)

        let detail = try #require(try fleet.ledger.sessionDetail(id, failedLimit: 50))

        #expect(detail.record.id == id)
        #expect(detail.record.totals == (try fleet.ledger.session(id))?.totals)
        #expect(detail.record.totals.failedFiles == 3)
        #expect(detail.failedFilesNotShown == 0)
        #expect(detail.failedFiles.map(\.localPath) == ["/data/f0.wav", "/data/f4.wav", "/data/f5.wav"])
        let network = detail.failedFiles[1]
        #expect(network.status == "failed")
        #expect(network.errorClass == "network")
        #expect(network.errorMessage == "connection reset by peer")
        #expect(network.httpStatus == nil)
        #expect(network.attempts == 4)
        #expect(network.bucket == "fleet-data")
        #expect(network.key == "raw/s\(id)/f4.wav")
        #expect(network.finishedAt != nil)
        let throttled = detail.failedFiles[2]
        #expect(throttled.errorClass == "throttled")
        #expect(throttled.httpStatus == 503)
        #expect(throttled.errorMessage == "SlowDown: reduce your request rate")
        let permanent = detail.failedFiles[0]
        #expect(permanent.status == "permanent_failure")
        #expect(permanent.errorClass == "invalid_key")
        #expect(permanent.errorMessage == "key is longer than 1024 bytes")
        #expect(permanent.attempts == 0)
        #expect(detail.retryRounds.isEmpty)
        #expect(detail.triggerEvents.isEmpty)
    }

    @Test func failedLimitKeepsTheFirstFilesInRecordedOrderAndCountsTheRest() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try LedgerFixture(database)
        let id = try fleet.session(uploaded: 1, failed: Array(repeating: .network, count: 5), rejected: 1)

        let three = try #require(try fleet.ledger.sessionDetail(id, failedLimit: 3))
        let none = try #require(try fleet.ledger.sessionDetail(id, failedLimit: 0))

        #expect(three.failedFiles.map(\.localPath) == ["/data/f0.wav", "/data/f2.wav", "/data/f3.wav"])
        #expect(three.failedFilesNotShown == 3)
        #expect(none.failedFiles.isEmpty)
        #expect(none.failedFilesNotShown == 6)
    }

    @Test func sessionDetailHasItsRetryRoundsAndTriggerCallsInOrder() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try LedgerFixture(database)
        let id = try fleet.session(uploaded: 1, failed: [.network, .network])
        let other = try fleet.session(uploaded: 1)
        let ledger = fleet.ledger
        let first = try ledger.startRetryRound(sessionID: id)
        try ledger.finishRetryRound(sessionID: id, round: first, attempted: 2, uploaded: 1, failed: 1)
        let second = try ledger.startRetryRound(sessionID: id)
        _ = try ledger.startRetryRound(sessionID: other)
        try ledger.connection.execute(
            """
            INSERT INTO trigger_events (session_id, url, delivery, attempt, http_status, latency_ms, succeeded,
                                        error_message, created_at)
            VALUES (\(id), 'https://hooks.example/x?token=secret', 1, 1, NULL, 5000, false, 'timed out', now()),
                   (\(id), 'https://hooks.example/x?token=secret', 1, 2, 200, 84, true, NULL,
                    now() + interval '1 second'),
                   (\(other), 'https://hooks.example/x', 1, 1, 200, 12, true, NULL, now())
            """
        )

        let detail = try #require(try ledger.sessionDetail(id, failedLimit: 50))

        #expect(detail.retryRounds.map(\.round) == [first, second])
        #expect(detail.retryRounds[0].filesAttempted == 2)
        #expect(detail.retryRounds[0].filesUploaded == 1)
        #expect(detail.retryRounds[0].filesFailed == 1)
        #expect(detail.retryRounds[0].finishedAt != nil)
        #expect(detail.retryRounds[1].finishedAt == nil)
        #expect(detail.triggerEvents.map(\.attempt) == [1, 2])
        #expect(detail.triggerEvents[0].succeeded == false)
        #expect(detail.triggerEvents[0].httpStatus == nil)
        #expect(detail.triggerEvents[0].latencyMs == 5000)
        #expect(detail.triggerEvents[0].errorMessage == "timed out")
        #expect(detail.triggerEvents[1].succeeded)
        #expect(detail.triggerEvents[1].httpStatus == 200)
    }

    @Test func unknownSessionHasNoDetail() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        #expect(try database.ledger().sessionDetail(42, failedLimit: 50) == nil)
    }

    @Test func sessionDetailJSONIsTheSessionRecordWithFourArraysBesideIt() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try LedgerFixture(database)
        let id = try fleet.session(uploaded: 2, failed: [.throttled])
        try fleet.ledger.connection.execute(
            """
            INSERT INTO trigger_events (session_id, url, delivery, attempt, http_status, latency_ms, succeeded)
            VALUES (\(id), 'https://hooks.example/x?token=secret', 1, 1, 200, 84, true)
            """
        )
        let detail = try #require(try fleet.ledger.sessionDetail(id, failedLimit: 50))

        let object = try jsonObject(detail)
        let record = try jsonObject(detail.record)

        #expect(
            Set(object.keys).subtracting(record.keys) == [
                "failed_files", "retry_rounds", "trigger_events", "processes", "stale",
            ]
        )
        for (key, value) in record {
            #expect(try canonical(object[key] ?? "absent") == canonical(value), "\(key)")
        }
        let failed = try #require(object["failed_files"] as? [[String: Any]])
        #expect(failed.count == 1)
        #expect(failed.first?["error_class"] as? String == "throttled")
        #expect(failed.first?["http_status"] as? Int == 503)
        #expect(failed.first?["s3_key"] as? String == "raw/s\(id)/f2.wav")
        let events = try #require(object["trigger_events"] as? [[String: Any]])
        let event = try #require(events.first)
        #expect(
            Set(event.keys) == ["delivery", "attempt", "at", "http_status", "latency_ms", "succeeded", "error_message"]
        )
        #expect(!String(decoding: try JSONEncoder().encode(detail), as: UTF8.self).contains("secret"))
    }

    @Test func fleetStatusJSONHasOneObjectWithEverySection() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try LedgerFixture(database)
        try fleet.session(uploaded: 1, failed: [.network])
        try fleet.session(uploaded: 1, close: false)

        let object = try jsonObject(try fleet.ledger.fleetStatus(StatusFilter(limit: 5, project: "survey")))

        #expect(
            Set(object.keys) == [
                "read_at", "filter", "sessions", "failures_by_class", "project_window_days", "projects", "devices",
                "connections",
            ]
        )
        let filter = try #require(object["filter"] as? [String: Any])
        #expect(filter["limit"] as? Int == 5)
        #expect(filter["project"] as? String == "survey")
        #expect(filter["device"] is NSNull)
        let sessions = try #require(object["sessions"] as? [[String: Any]])
        #expect(sessions.count == 2)
        #expect(sessions[0]["status"] as? String == "running")
        #expect(sessions[0]["files_uploaded"] is NSNull)
        #expect(sessions[0]["files_per_second"] is NSNull)
        #expect(sessions[1]["files_failed"] as? Int == 1)
        #expect(sessions[1]["total_size_bytes"] as? Int == 2000)
        #expect(object["failures_by_class"] as? [String: Int] == ["network": 1])
    }

    /// A JSON value as sorted-key text, so two decoded values can be compared.
    private func canonical(_ value: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys]), as: UTF8.self)
    }

    private func jsonObject(_ value: some Encodable) throws -> [String: Any] {
        let data = try JSONEncoder().encode(value)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

/// Ledger contents recorded the way `upload` records them: project, device, configuration, session, files,
/// outcomes, close.
private struct LedgerFixture {
    let ledger: Ledger

    init(_ database: TestDatabase) throws {
        ledger = try database.ledger()
    }

    /// How an upload attempt failed.
    enum Failure {
        case network, throttled

        func apply(to outcome: inout UploadOutcome) {
            switch self {
            case .network:
                outcome.errorClass = "network"
                outcome.errorMessage = "connection reset by peer"
            case .throttled:
                outcome.errorClass = "throttled"
                outcome.errorMessage = "SlowDown: reduce your request rate"
                outcome.httpStatus = 503
            }
        }
    }

    func config(project: String) throws -> FleetConfig {
        try ConfigLoader.decode(
            try ConfigValue.parseYAML(
                """
                project: { name: \(project) }
                s3: { bucket: fleet-data, prefix: raw }
                source: { path: /data }
                """
            )
        )
    }

    /// Records a session of 1,000-byte files at `/data/f<n>.wav`: first the `rejected` ones (permanent failures
    /// with an invalid key, found when they were recorded), then the uploaded ones, then the failed ones (four
    /// attempts each). Closes it unless `close` is false.
    ///
    /// - Returns: the session's id.
    @discardableResult
    func session(
        project: String = "survey",
        device: String = "rig-1",
        uploaded: Int,
        failed: [Failure] = [],
        rejected: Int = 0,
        close: Bool = true
    ) throws -> Int64 {
        let config = try config(project: project)
        let projectID = try ledger.upsertProject(config, region: "us-east-1", endpoint: nil)
        let deviceID = try ledger.upsertDevice(name: device, hostname: "\(device).local", agentVersion: "0.9.0")
        let configID = try ledger.recordConfig(projectID: projectID, config: config, sourcePath: nil)
        let sessionID = try ledger.openSession(
            kind: "upload",
            projectID: projectID,
            deviceID: deviceID,
            configID: configID,
            localDirectory: "/data",
            bucket: "fleet-data",
            prefix: "raw"
        )
        let count = rejected + uploaded + failed.count
        let files = (0..<count).map { index in
            var file = PlannedFile(
                source: "data",
                localPath: "/data/f\(index).wav",
                relativePath: "f\(index).wav",
                pathBytes: nil,
                bucket: "fleet-data",
                key: "raw/s\(sessionID)/f\(index).wav",
                size: 1000,
                mtime: Timestamp(seconds: 1_763_000_000)
            )
            if index < rejected {
                file.errorClass = "invalid_key"
                file.errorMessage = "key is longer than 1024 bytes"
            }
            return file
        }
        try ledger.recordFiles(files, sessionID: sessionID, projectID: projectID)
        let jobs = try ledger.claimFiles(sessionID: sessionID, limit: count + 1, worker: "test:1")
        let started = Timestamp.now()
        let outcomes = jobs.enumerated().map { index, job in
            guard index >= uploaded else {
                return UploadOutcome(job: job, status: .uploaded, attempts: 1, startedAt: started)
            }
            var outcome = UploadOutcome(job: job, status: .failed, attempts: 4, startedAt: started)
            failed[index - uploaded].apply(to: &outcome)
            return outcome
        }
        try ledger.recordOutcomes(outcomes, sessionID: sessionID)
        if close {
            _ = try ledger.closeSession(
                sessionID,
                status: failed.isEmpty && rejected == 0 ? .completed : .completedWithErrors
            )
        }
        return sessionID
    }
}
