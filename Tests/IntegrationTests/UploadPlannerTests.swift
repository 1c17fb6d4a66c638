import FleetSystem
import FleetTestSupport
import Foundation
import Logging
import Testing

@testable import FleetCore
@testable import FleetLedger

struct UploadPlannerTests {
    private func config(_ tree: TemporaryTree, _ extra: String = "") throws -> FleetConfig {
        let yaml = """
            project: { name: survey }
            device: rig-1
            s3: { bucket: fleet-data, prefix: raw/2026 }
            source: { path: "\(tree.root.path)", include: ["*.wav", "*.jpg"], exclude: ["tmp/"] }
            \(extra)
            """
        return try ConfigLoader.decode(try ConfigValue.parseYAML(yaml))
    }

    @Test func planCountsWhatWouldBeUploadedAndShowsKeys() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let tree = try TemporaryTree()
        defer { tree.remove() }
        try tree.file("a/one.wav", size: 100)
        try tree.file("a/b/two.jpg", size: 200)
        try tree.file("a/notes.txt", size: 5)
        try tree.file("tmp/three.wav", size: 7)
        try tree.file("take 1 + 100%.wav", size: 1)

        let plan = try UploadPlanner(config: config(tree), logger: quietLogger).plan(ledger: database.ledger())

        #expect(plan.scan.found == 5)
        #expect(plan.scan.excludedByPattern == 2)
        #expect(plan.toUploadFiles == 3)
        #expect(plan.toUploadBytes == 301)
        #expect(plan.alreadyUploadedFiles == 0)
        let keys = Set(plan.samples.map(\.key))
        #expect(keys == ["raw/2026/a/one.wav", "raw/2026/a/b/two.jpg", "raw/2026/take 1 + 100%.wav"])
        #expect(plan.samples.allSatisfy { $0.bucket == "fleet-data" })
    }

    @Test func filesTheLedgerRecordsAsStoredAreNotPlannedAgain() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let mtime = Date(timeIntervalSince1970: 1_763_000_000.25)
        try tree.file("same.wav", size: 10, mtime: mtime)
        try tree.file("changed.wav", size: 10, mtime: mtime)
        try tree.file("new.wav", size: 10, mtime: mtime)
        let ledger = try database.ledger()
        let stored = Timestamp(mtime)
        let later = Timestamp(microseconds: stored.microseconds + 1)
        try ledger.connection.execute(
            """
            WITH p AS (INSERT INTO projects (name, bucket, region, key_template)
                       VALUES ('survey', 'fleet-data', 'us-east-1', '{prefix}/{relpath}') RETURNING id)
            INSERT INTO stored_objects (project_id, bucket, s3_key, size_bytes, mtime)
            SELECT id, 'fleet-data', 'raw/2026/same.wav', 10, \(stored)::timestamptz FROM p
            UNION ALL SELECT id, 'fleet-data', 'raw/2026/changed.wav', 10, \(later)::timestamptz FROM p
            """
        )

        let plan = try UploadPlanner(config: config(tree), logger: quietLogger).plan(ledger: ledger)

        #expect(plan.alreadyUploadedFiles == 1)
        #expect(plan.alreadyUploadedBytes == 10)
        #expect(plan.toUploadFiles == 2)
    }

    @Test func dryRunWritesNothingToTheLedger() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let tree = try TemporaryTree()
        defer { tree.remove() }
        for index in 0..<50 { try tree.file("d\(index % 5)/f\(index).wav") }
        let ledger = try database.ledger()

        _ = try UploadPlanner(config: config(tree), logger: quietLogger).plan(ledger: ledger)

        let counts = try ledger.connection.execute(
            """
            SELECT (SELECT count(*) FROM projects) + (SELECT count(*) FROM devices) + (SELECT count(*) FROM sync_sessions)
                 + (SELECT count(*) FROM file_uploads) + (SELECT count(*) FROM config_history)
                 + (SELECT count(*) FROM stored_objects),
                   to_regclass('pg_temp.plan_files') IS NULL
            """
        )
        #expect(counts.int(0, 0) == 0)
        #expect(counts.bool(0, 1) == true)
    }

    @Test func maxAgeKeepsAFileExactlyAtTheBoundary() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let now = Date(timeIntervalSince1970: 1_763_900_000)
        try tree.file("edge.wav", mtime: now.addingTimeInterval(-3 * 86_400))
        try tree.file("old.wav", mtime: now.addingTimeInterval(-3 * 86_400 - 1))
        try tree.file("fresh.wav", mtime: now.addingTimeInterval(-30))
        try tree.file("stable.wav", mtime: now.addingTimeInterval(-60))

        let plan = try UploadPlanner(
            config: config(tree, "scan: { max_age_days: 3, min_age_seconds: 60 }"),
            logger: quietLogger
        ).plan(ledger: database.ledger(), now: Timestamp(now))

        #expect(Set(plan.samples.map(\.key)) == ["raw/2026/edge.wav", "raw/2026/stable.wav"])
        #expect(plan.scan.tooOld == 1)
        #expect(plan.scan.tooNew == 1)
    }

    @Test func vehicleLayoutPlacesEachSourceByDeviceAndDate() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let terminal = try TemporaryTree()
        let ros = try TemporaryTree()
        defer {
            terminal.remove()
            ros.remove()
        }
        let mtime = Date(timeIntervalSince1970: 1_763_906_400)  // 2025-11-23 14:00 UTC
        try terminal.file("terminal_1.log", mtime: mtime)
        try ros.file("2025-11-23-15-30-00-mini01/rosout.log", mtime: mtime)
        try ros.file("2025-11-23-15-30-00-mini01/launch.log", mtime: mtime)
        let yaml = """
            project: { name: t01logs }
            device: vehicle-CN-001
            s3: { bucket: t01logs, region: cn-north-1 }
            sources:
              - { name: terminal, path: "\(terminal.root.path)" }
              - { name: ros, path: "\(ros.root.path)" }
            """
        let config = try ConfigLoader.decode(try ConfigValue.parseYAML(yaml))

        let plan = try UploadPlanner(config: config, logger: quietLogger).plan(ledger: database.ledger())

        #expect(
            Set(plan.samples.map(\.key)) == [
                "vehicle-CN-001/2025-11-23/terminal/terminal_1.log",
                "vehicle-CN-001/2025-11-23/ros/2025-11-23-15-30-00-mini01/rosout.log",
                "vehicle-CN-001/2025-11-23/ros/2025-11-23-15-30-00-mini01/launch.log",
            ]
        )
    }

    @Test func keysClaimedByTwoFilesAndFilesWithoutAValidKeyAreReported() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let tree = try TemporaryTree()
        defer { tree.remove() }
        try tree.file("good-bucket/x/a.wav")
        try tree.file("good-bucket/y/a.wav")
        try tree.file("Bad_Bucket/b.wav")
        try tree.file("loose.wav")
        let yaml = """
            project: { name: p }
            s3: { region: eu-west-1 }
            source: { path: "\(tree.root.path)" }
            keys: { first_dir_is_bucket: true, template: "{filename}" }
            """
        let config = try ConfigLoader.decode(try ConfigValue.parseYAML(yaml))

        let plan = try UploadPlanner(config: config, logger: quietLogger).plan(ledger: database.ledger())

        #expect(plan.unplaceableCount == 2)
        #expect(plan.duplicateKeys == 1)
        #expect(plan.toUploadFiles == 2)
    }

    @Test func missingSourceDirectoryIsAConfigurationError() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let yaml = """
            project: { name: p }
            s3: { bucket: some-bucket }
            source: { path: /nonexistent/fleet-upload-test }
            """
        let config = try ConfigLoader.decode(try ConfigValue.parseYAML(yaml))

        let error = try #require(throws: ConfigError.self) {
            try UploadPlanner(config: config, logger: quietLogger).plan(ledger: database.ledger())
        }
        #expect(error.description == "source.path: no readable directory at '/nonexistent/fleet-upload-test'")
    }
}
