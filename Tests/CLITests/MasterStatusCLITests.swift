import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore
@testable import FleetLedger

/// `master status` as a user runs it, against ledger contents recorded through the Ledger API.
struct MasterStatusCLITests {
    @Test func emptyLedgerSaysSoPlainly() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        let result = try CLI.run("master", ["status", "--database", database.url])

        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("The ledger holds no sessions yet"))
    }

    @Test func fleetViewAlignsSessionsFailuresProjectsAndDevices() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let first = try recordSession(ledger, project: "survey", device: "rig-1", uploaded: 12, failed: 0)
        let second = try recordSession(ledger, project: "mapping-long-name", device: "rig-22", uploaded: 3, failed: 2)
        try ledger.connection.execute(
            """
            UPDATE devices SET last_heartbeat_at = now() - interval '3 minutes', disk_used_percent = 41.5,
                queue_files = 1200, queue_bytes = 7340032, agent_version = '1.4.0'
            WHERE name = 'rig-1'
            """
        )

        let result = try CLI.run("master", ["status"], environment: ["DATABASE_URL": database.url])

        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let sessionRows = try rows(of: "Recent sessions", in: lines)
        #expect(sessionRows.count == 3)
        try expectAligned(sessionRows, columns: ["PROJECT", "STATUS", "STARTED (UTC)"], leftAligned: true)
        try expectAligned(sessionRows, columns: ["ID", "FILES", "UPLOADED", "FAILED"], leftAligned: false)
        #expect(
            words(sessionRows[1]).prefix(5) == [
                "\(second)", "mapping-long-name", "rig-22", "upload", "completed_with_errors",
            ]
        )
        #expect(words(sessionRows[2]).prefix(5) == ["\(first)", "survey", "rig-1", "upload", "completed"])
        #expect(try rows(of: "Failures by class", in: lines).map(words) == [["CLASS", "FILES"], ["network", "2"]])
        let projects = try rows(of: "Projects", in: lines)
        #expect(projects.count == 3)
        try expectAligned(projects, columns: ["PROJECT", "LAST SESSION (UTC)"], leftAligned: true)
        let devices = try rows(of: "Devices", in: lines)
        try expectAligned(devices, columns: ["DEVICE", "LAST HEARTBEAT (UTC)"], leftAligned: true)
        try expectAligned(devices, columns: ["AGE", "DISK", "QUEUED FILES"], leftAligned: false)
        #expect(devices[1].contains(" 3m ago "))
        #expect(devices[1].contains(" 41.5% "))
        #expect(devices[1].contains(" 1,200 "))
        #expect(devices[1].contains(" 7.00 MiB "))
        #expect(devices[2].contains(" never "))
    }

    @Test func sessionJSONCarriesTheSessionRecordFieldsAndItsFailures() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let id = try recordSession(ledger, project: "survey", device: "rig-1", uploaded: 2, failed: 3)

        let result = try CLI.run("master", ["status", "--session", String(id), "--json", "--database", database.url])

        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let record = try #require(try ledger.session(id))
        let expected = try #require(
            try JSONSerialization.jsonObject(with: try JSONEncoder().encode(record)) as? [String: Any]
        )
        #expect(
            Set(object.keys)
                == Set(expected.keys).union(["failed_files", "retry_rounds", "trigger_events", "processes", "stale"])
        )
        for (key, value) in expected {
            #expect(try canonical(object[key] ?? "absent") == canonical(value), "\(key)")
        }
        let failed = try #require(object["failed_files"] as? [[String: Any]])
        #expect(failed.map { $0["local_path"] as? String } == ["/data/f2.wav", "/data/f3.wav", "/data/f4.wav"])
        #expect(failed.allSatisfy { $0["error_class"] as? String == "network" })
        #expect(failed.first?["error_message"] as? String == "connection reset by peer")
        #expect(object["retry_rounds"] as? [Any] != nil)
        #expect(object["trigger_events"] as? [Any] != nil)
    }

    @Test func sessionTextShowsFailedFilesUpToTheLimit() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let id = try recordSession(ledger, project: "survey", device: "rig-1", uploaded: 1, failed: 3)

        let result = try CLI.run(
            "master",
            ["status", "--session", String(id), "--failed-limit", "2", "--database", database.url]
        )

        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first == "Session \(id): completed_with_errors")
        #expect(lines.contains("  failed          3 files, 2.93 KiB"))
        #expect(lines.contains("    network       3"))
        let failed = try rows(of: "Failed files (3, the first 2 shown)", in: lines)
        try expectAligned(failed, columns: ["PATH", "KEY", "CLASS", "LAST ERROR"], leftAligned: true)
        #expect(failed.count == 4)
        #expect(failed[1].hasPrefix("  /data/f1.wav  raw/s\(id)/f1.wav  failed  network "))
        #expect(failed[1].hasSuffix("  connection reset by peer"))
        #expect(failed[3] == "  … and 1 more (--failed-limit N shows more)")
        #expect(try rows(of: "Retry rounds", in: lines) == ["  none"])
    }

    /// A session whose process was SIGKILLed stays marked running; once its heartbeat is a minute old, status
    /// shows it stale (text and JSON), while a session whose heartbeat is fresh still shows running.
    @Test func runningSessionWithAStoppedHeartbeatIsShownStale() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let killed = try recordSession(ledger, project: "survey", device: "rig-1", uploaded: 1, failed: 0, close: false)
        let alive = try recordSession(ledger, project: "survey", device: "rig-2", uploaded: 1, failed: 0, close: false)
        try ledger.connection.execute(
            "UPDATE sync_sessions SET heartbeat_at = now() - interval '5 minutes' WHERE id = \(killed)"
        )

        let fleet = try CLI.run("master", ["status", "--database", database.url])
        let json = try CLI.run("master", ["status", "--json", "--database", database.url])
        let one = try CLI.run("master", ["status", "--session", String(killed), "--database", database.url])

        #expect(fleet.status == 0, "\(fleet.stderr)")
        let lines = fleet.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { words($0).prefix(5) == ["\(killed)", "survey", "rig-1", "upload", "stale"] })
        #expect(lines.contains { words($0).prefix(5) == ["\(alive)", "survey", "rig-2", "upload", "running"] })
        #expect(lines.contains { $0.hasPrefix("  stale: marked running, but silent for over 1 min 00 s") })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let sessions = try #require(object["sessions"] as? [[String: Any]])
        let staleByID = Dictionary(
            uniqueKeysWithValues: sessions.map { ($0["session_id"] as? Int ?? 0, $0["stale"] as? Bool) }
        )
        #expect(staleByID == [Int(killed): true, Int(alive): false])
        #expect(one.stdout.hasPrefix("Session \(killed): stale\n"), "\(one.stdout)")
        #expect(one.stdout.contains(" UTC (stale: silent for 5 min "), "\(one.stdout)")
        #expect(one.stdout.contains("retry --session \(killed) closes it)"), "\(one.stdout)")
    }

    /// An `sslmode` libpq does not know can never connect: it is configuration (exit 2), from the URL or from
    /// PGSSLMODE, and nothing is tried.
    @Test func unknownSSLModeIsAConfigurationError() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        let inURL = try CLI.run("master", ["status", "--database", database.url + "?sslmode=sometimes"])
        let inEnvironment = try CLI.run(
            "master",
            ["status"],
            environment: ["DATABASE_URL": database.url, "PGSSLMODE": "on"]
        )

        #expect(inURL.status == 2, "\(inURL.stderr)")
        #expect(
            inURL.stderr
                == "master: the ledger's connection string: sslmode 'sometimes' is not one of disable, allow, "
                + "prefer, require, verify-ca, verify-full\n"
        )
        #expect(inEnvironment.status == 2, "\(inEnvironment.stderr)")
        #expect(inEnvironment.reason.hasPrefix("master: PGSSLMODE: sslmode 'on' is not one of disable"))
    }

    /// A password in `--database` is visible in `ps`: the command warns (without the password) and still runs;
    /// the same URL from DATABASE_URL is not warned about.
    @Test func passwordOnTheCommandLineIsWarnedAboutButNeverPrinted() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        var components = try #require(URLComponents(string: database.url))
        components.password = "pw-kept-out-of-sight"
        let url = try #require(components.string)

        let flag = try CLI.run("master", ["status", "--database", url])
        let variable = try CLI.run("master", ["status"], environment: ["DATABASE_URL": url])

        #expect(flag.status == 0, "\(flag.stderr)")
        #expect(flag.reason.hasPrefix("warning: --database holds a password, which other users of this machine"))
        #expect(flag.reason.hasSuffix("or the password in a password file (PGPASSFILE) instead"))
        #expect(!flag.stderr.contains("pw-kept-out-of-sight"))
        #expect(!flag.stdout.contains("pw-kept-out-of-sight"))
        #expect(variable.status == 0, "\(variable.stderr)")
        #expect(variable.stderr.isEmpty, "\(variable.stderr)")
    }

    @Test func unknownSessionExitsWithUsageStatus() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        let result = try CLI.run("master", ["status", "--session", "4242", "--database", database.url])

        #expect(result.status == 2)
        #expect(result.reason.hasPrefix("master: no session 4242 in the ledger"))
        #expect(result.stdout.isEmpty)
    }

    @Test func unknownProjectOrDeviceExitsWithUsageStatus() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        let project = try CLI.run("master", ["status", "--project", "nope", "--database", database.url])
        let device = try CLI.run("master", ["status", "--device", "nope", "--json", "--database", database.url])

        #expect(project.status == 2)
        #expect(project.reason.hasPrefix("master: --project: no project named 'nope'"))
        #expect(device.status == 2)
        #expect(device.reason.hasPrefix("master: --device: no device named 'nope'"))
    }

    @Test(arguments: [
        ["--limit", "0"], ["--failed-limit", "5"], ["--session", "1", "--project", "survey"], ["--session", "x"],
    ])
    func badUsageExitsWithUsageStatus(arguments: [String]) throws {
        let result = try CLI.run("master", ["status"] + arguments + ["--database", "postgresql://127.0.0.1:1/none"])

        #expect(result.status == 2, "\(result.stderr)")
        #expect(!result.reason.isEmpty)
    }

    @Test func unreachableDatabaseExitsWithEnvironmentStatus() throws {
        let result = try CLI.run("master", ["status", "--database", "postgresql://fleet@127.0.0.1:1/none"])

        #expect(result.status == 3)
        #expect(result.reason.hasPrefix("master: "))
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test func helpExplainsTheViewsAndOptions() throws {
        let result = try CLI.run("master", ["status", "--help"])

        #expect(result.status == 0)
        for option in ["--session", "--limit", "--project", "--device", "--failed-limit", "--json", "--database"] {
            #expect(result.stdout.contains(option), "\(option)")
        }
        #expect(result.stdout.contains("UTC"))
    }

    // MARK: - Helpers

    /// Records a session the way `upload` does: `uploaded` files that went up, then `failed` ones that failed
    /// with a network error, 1,000 bytes each at `/data/f<n>.wav`; closes it.
    private func recordSession(
        _ ledger: Ledger,
        project: String,
        device: String,
        uploaded: Int,
        failed: Int,
        close: Bool = true
    ) throws
        -> Int64
    {
        let config = try ConfigLoader.decode(
            try ConfigValue.parseYAML(
                "{ project: { name: \(project) }, s3: { bucket: fleet-data, prefix: raw }, source: { path: /data } }"
            )
        )
        let projectID = try ledger.upsertProject(config, region: "us-east-1", endpoint: nil)
        let deviceID = try ledger.upsertDevice(name: device, hostname: "\(device).local", agentVersion: "0.9.0")
        let sessionID = try ledger.openSession(
            kind: "upload",
            projectID: projectID,
            deviceID: deviceID,
            configID: try ledger.recordConfig(projectID: projectID, config: config, sourcePath: nil),
            localDirectory: "/data",
            bucket: "fleet-data",
            prefix: "raw"
        )
        let files = (0..<uploaded + failed).map { index in
            PlannedFile(
                source: "data",
                localPath: "/data/f\(index).wav",
                relativePath: "f\(index).wav",
                pathBytes: nil,
                bucket: "fleet-data",
                key: "raw/s\(sessionID)/f\(index).wav",
                size: 1000,
                mtime: Timestamp(seconds: 1_763_000_000)
            )
        }
        try ledger.recordFiles(files, sessionID: sessionID, projectID: projectID)
        let jobs = try ledger.claimFiles(sessionID: sessionID, limit: files.count, worker: "test:1")
        let outcomes = jobs.enumerated().map { index, job in
            guard index >= uploaded else {
                return UploadOutcome(job: job, status: .uploaded, attempts: 1, startedAt: .now())
            }
            var outcome = UploadOutcome(job: job, status: .failed, attempts: 4, startedAt: .now())
            outcome.errorClass = "network"
            outcome.errorMessage = "connection reset by peer"
            return outcome
        }
        try ledger.recordOutcomes(outcomes, sessionID: sessionID)
        if close { _ = try ledger.closeSession(sessionID, status: failed == 0 ? .completed : .completedWithErrors) }
        return sessionID
    }

    /// The table under the line starting with `heading`: its header row and the rows up to the next blank line.
    private func rows(of heading: String, in lines: [String]) throws -> [String] {
        let start = try #require(lines.firstIndex { $0.hasPrefix(heading) }, "no section \(heading)")
        return Array(lines[(start + 1)...].prefix { !$0.isEmpty })
    }

    /// Every row's cell in each column starts (left-aligned) or ends (right-aligned) where its header does.
    private func expectAligned(_ table: [String], columns: [String], leftAligned: Bool) throws {
        let header = try #require(table.first)
        for column in columns {
            let range = try #require(columnRange(column, in: header), "no column \(column)")
            let edge = leftAligned ? range.lowerBound : range.upperBound
            let offset = header.distance(from: header.startIndex, to: edge)
            for row in table.dropFirst() where !row.hasPrefix("  …") {
                let characters = Array(row)
                if leftAligned {
                    #expect(
                        offset < characters.count && characters[offset - 1] == " " && characters[offset] != " ",
                        "\(column): \(row)"
                    )
                } else {
                    #expect(
                        offset <= characters.count && characters[offset - 1] != " "
                            && (offset == characters.count || characters[offset] == " "),
                        "\(column): \(row)"
                    )
                }
            }
        }
    }

    /// Where the header names `column` as a whole: "AGE" is not the start of "AGENT".
    private func columnRange(_ column: String, in header: String) -> Range<String.Index>? {
        var from = header.startIndex
        while let range = header.range(of: column, range: from..<header.endIndex) {
            let startsWord =
                range.lowerBound == header.startIndex || header[header.index(before: range.lowerBound)] == " "
            let endsWord = range.upperBound == header.endIndex || header[range.upperBound] == " "
            if startsWord && endsWord { return range }
            from = header.index(after: range.lowerBound)
        }
        return nil
    }

    private func words(_ line: String) -> [String] { line.split(separator: " ").map(String.init) }

    /// A JSON value as sorted-key text, so two decoded values can be compared.
    private func canonical(_ value: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys]), as: UTF8.self)
    }
}
