import FleetAWS
import FleetSystem
import FleetTestSupport
import Foundation
import Logging
import Testing

@testable import FleetCore
@testable import FleetLedger

/// `master import-state --registry/--queue`: the vehicle daemon's record of what it uploaded and what it had
/// queued, and the agent's start-up run after it.
@Suite(.serialized)
struct ImportStateTests {
    /// The mtime as the old daemon's registry wrote it: seconds since 1970 as a floating-point number.
    private static func registryMtime(_ url: URL) throws -> Double {
        var info = stat()
        try #require(stat(url.path, &info) == 0)
        return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
    }

    private static func registryJSON(_ entries: [(path: String, size: Int, mtime: Double)]) -> String {
        let files = entries.map { entry in
            """
            "\(entry.path)::\(entry.size)::\(entry.mtime)": {"processed_at": "2026-11-20T10:30:00.123456", \
            "size": \(entry.size), "mtime": \(entry.mtime), "filepath": "\(entry.path)", \
            "filename": "\(URL(fileURLWithPath: entry.path).lastPathComponent)"}
            """
        }
        return #"{"_metadata": {"version": "2.3", "total_files": \#(entries.count)}, "files": {"#
            + files.joined(separator: ",\n") + "}}"
    }

    @Test func afterARegistryOfAThousandFilesTheStartupRunUploadsOnlyTheOthersAndTheQueue() throws {
        let harness = try AgentTests.Harness(
            agentSection: "stability_seconds: 1\nupload_on_start: true",
            extra: "scan: { max_age_days: 3 }"
        )
        defer { harness.finish() }
        let root = harness.tree.root
        let hourAgo = Date().addingTimeInterval(-3600.123456)
        let fiveDaysAgo = Date().addingTimeInterval(-5 * 86_400)

        var registry: [(path: String, size: Int, mtime: Double)] = []
        for index in 0..<1000 {
            let name = index % 2 == 0 ? "terminal/run-\(index / 100)/t\(index).log" : "ros/r\(index).log"
            let url = try harness.file(name, "uploaded by the old daemon \(index)", mtime: hourAgo)
            registry.append((url.path, "uploaded by the old daemon \(index)".utf8.count, try Self.registryMtime(url)))
        }
        var expected: Set<String> = []
        let day = Timestamp(hourAgo).calendarDate(offsetSeconds: 0)
        for index in 0..<25 {
            try harness.file("terminal/new\(index).log", "new \(index)", mtime: hourAgo)
            expected.insert("vehicle-7/\(day)/terminal/new\(index).log")
        }
        // Changed since the old daemon uploaded it: the agent uploads the new version.
        let changed = try harness.file("terminal/changed.log", "short", mtime: hourAgo)
        registry.append((changed.path, 3, try Self.registryMtime(changed)))
        expected.insert("vehicle-7/\(day)/terminal/changed.log")
        // Gone since: recorded as the registry says. Outside every source: skipped.
        registry.append((root.appendingPathComponent("terminal/gone.log").path, 10, 1_700_000_000.25))
        registry.append(("/var/log/syslog", 10, 1_700_000_000.25))
        registry.append((root.appendingPathComponent("other/x.log").path, 10, 1_700_000_000.25))

        // Queued but too old for the start-up scan (3 days): only the import brings them.
        var queue: [String] = []
        for index in 0..<3 {
            let url = try harness.file("ros/queued\(index).log", "queued \(index)", mtime: fiveDaysAgo)
            queue.append(
                #"{"filepath": "\#(url.path)", "size": \#("queued \(index)".utf8.count), "detected_at": "2026-11-20T10:30:00", "attempts": 2}"#
            )
            expected.insert("vehicle-7/\(Timestamp(fiveDaysAgo).calendarDate(offsetSeconds: 0))/ros/queued\(index).log")
        }
        let resized = try harness.file("ros/resized.log", "grew since", mtime: fiveDaysAgo)
        queue.append(
            #"{"filepath": "\#(resized.path)", "size": 3, "detected_at": "2026-11-20T10:30:00", "attempts": 0}"#
        )
        queue.append(#"{"filepath": "\#(root.path)/ros/vanished.log", "size": 3, "attempts": 0}"#)
        queue.append(#"{"filepath": "\#(registry[0].path)", "size": \#(registry[0].size), "attempts": 0}"#)

        let registryPath = root.appendingPathComponent("processed_files.json").path
        try Self.registryJSON(registry).write(toFile: registryPath, atomically: true, encoding: .utf8)
        let queuePath = root.appendingPathComponent("queue.json").path
        try (#"{"files": ["# + queue.joined(separator: ",\n") + "]}").write(
            toFile: queuePath,
            atomically: true,
            encoding: .utf8
        )

        var importer = RegistryImport(
            config: try ConfigLoader.load(path: harness.configPath),
            databaseURL: harness.database.url,
            logger: quietLogger
        )
        importer.environment = harness.s3.environment
        let summary = try importer.run(registry: registryPath, queue: queuePath)
        #expect(summary.registryEntries == 1004)
        #expect(summary.recorded == 1001 && summary.alreadyKnown == 0)
        #expect(
            summary.registrySkipped == [
                "outside every source of the configuration": 2,
                "changed since the old daemon uploaded it (the agent uploads it)": 1,
            ]
        )
        #expect(summary.queueEntries == 6 && summary.queued == 3)
        #expect(
            summary.queueSkipped == [
                "changed since it was queued (the agent finds it by its mtime)": 1, "the file is gone": 1,
                "uploaded already (in the registry)": 1,
            ]
        )
        // Again: nothing new.
        let again = try importer.run(registry: registryPath, queue: queuePath)
        #expect(again.recorded == 0 && again.alreadyKnown == 1001 && again.queued == 0 && again.alreadyQueued == 3)
        #expect(
            try harness.count("SELECT count(*) FROM stored_objects WHERE imported_from = 'tvm_registry'") == 1001
        )

        try harness.start()
        #expect(
            try eventually(within: 60) {
                try harness.count("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'") == expected.count
                    && harness.count("SELECT count(*) FROM sync_sessions WHERE status = 'running'") == 0
                    && harness.count("SELECT count(*) FROM queued_files") == 0
            }
        )
        #expect(harness.stop())
        #expect(Set(try harness.bucket().keys) == expected)
        // The registry's files were never even recorded: the start-up scan found them stored.
        #expect(try harness.count("SELECT count(*) FROM file_uploads") == expected.count)
        #expect(try harness.count("SELECT count(DISTINCT s3_key) FROM object_records") == 1001 + expected.count)
        #expect(
            try harness.rows("SELECT DISTINCT kind FROM sync_sessions").map { $0[0] ?? "" } == ["startup"]
        )
    }

    @Test func registryEntriesNeedAPathASizeAndAnMtime() throws {
        let cases: [(String, String)] = [
            (#"{"files": []}"#, "files: expected an object of uploaded files"),
            (#"{"files": {"/a::1::2": 3}}"#, #"files["/a::1::2"]: expected an object"#),
            (#"{"files": {"k": {"size": 1, "mtime": 2}}}"#, #"files["k"].filepath: expected an absolute path"#),
            (#"{"files": {"k": {"filepath": "/a", "mtime": 2}}}"#, #"files["k"].size: expected a size in bytes"#),
            (#"{"files": {"k": {"filepath": "/a", "size": 1, "mtime": "x"}}}"#, #"files["k"].mtime"#),
        ]
        for (json, message) in cases {
            let document = try ConfigValue.parseJSON(Data(json.utf8))
            #expect {
                _ = try RegistryImport.registryEntries(document, file: "r.json")
            } throws: { error in
                "\(error)".contains(message)
            }
        }
        // The key alone is enough: `<path>::<size>::<mtime>`, a path that holds `::` included.
        let entries = try RegistryImport.registryEntries(
            try ConfigValue.parseJSON(Data(#"{"files": {"/logs/a::b.log::42::1700000000.5": {}}}"#.utf8)),
            file: "r.json"
        )
        #expect(entries.map(\.path) == ["/logs/a::b.log"])
        #expect(entries.map(\.size) == [42])
        #expect(entries.map(\.mtimeMicroseconds) == [1_700_000_000_500_000])
    }

    @Test func oldTimesAreReadAsTheOldDaemonWroteThem() {
        #expect(RegistryImport.time(.double(1_700_000_000.25))?.microseconds == 1_700_000_000_250_000)
        #expect(RegistryImport.time(.string("2026-11-20T10:30:00Z"))?.iso8601 == "2026-11-20 10:30:00.000000+00")
        #expect(RegistryImport.time(.string("2026-11-20T10:30:00+08:00"))?.iso8601 == "2026-11-20 02:30:00.000000+00")
        let local = RegistryImport.time(.string("2026-11-20T10:30:00"))
        let offset = TimeZone.current.secondsFromGMT(for: local?.date ?? Date())
        #expect(
            local.map { $0.microseconds + Int64(offset) * 1_000_000 }
                == Timestamp(postgres: "2026-11-20 10:30:00")?.microseconds
        )
        #expect(RegistryImport.time(.string("yesterday")) == nil)
    }
}
