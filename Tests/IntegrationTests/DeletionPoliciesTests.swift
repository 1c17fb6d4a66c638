import FleetLedger
import FleetSystem
import FleetTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@testable import FleetCore

/// The agent's deletion policies against a real ledger, after real uploads to the local S3 server. What is
/// checked is what stays on disk and what `local_deletions` and `file_uploads` say.
struct DeletionPoliciesTests {
    // MARK: - After upload

    @Test func afterUploadWithKeepZeroDeletesExactlyTheUploadedFilesAndRecordsThem() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.file("a.log", size: 100)
        try fixture.tree.file("sub/b.log", size: 200)
        let odd = try fixture.writeFile(named: Array("odd-".utf8) + [0xFF] + Array(".log".utf8), size: 50)
        let session = try fixture.upload()
        try fixture.tree.file("late.log", size: 10)  // never uploaded

        let report = try fixture.policies(DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0)))
            .afterUpload(now: Date())

        #expect(report?.deletedFiles == 3)
        #expect(report?.deletedBytes == 350)
        #expect(report?.changedSinceUpload == 0)
        #expect(try fixture.remainingFiles() == ["late.log"])
        #expect(!fixture.exists(pathBytes: odd))
        #expect(fixture.exists("sub"), "directories stay unless remove_empty_directories is on")
        let rows = try fixture.deletions()
        #expect(rows.count == 3)
        #expect(rows.allSatisfy { $0.reason == "after_upload" && $0.wasUploaded && $0.sessionID == session })
        let device = try fixture.ids().device
        #expect(rows.allSatisfy { $0.deviceID == device })
        #expect(
            Set(rows.map(\.path)) == [fixture.path("a.log"), fixture.path("sub/b.log"), fixture.path("odd-%FF.log")]
        )
        #expect(Set(rows.map(\.size)) == [100, 200, 50])
        #expect(try fixture.count("SELECT count(*) FROM file_uploads WHERE local_deleted_at IS NOT NULL") == 3)

        let again = try fixture.policies(DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0)))
            .afterUpload(now: Date())
        #expect(again?.deletedFiles == 0)
        #expect(try fixture.deletions().count == 3)
    }

    @Test func afterUploadWaitsKeepDaysFromTheUpload() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.file("a.log")
        try fixture.tree.file("b.log")
        _ = try fixture.upload()
        let policies = try fixture.policies(DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 7)))

        let early = try policies.afterUpload(now: Date().addingTimeInterval(6 * 86_400))
        #expect(early?.deletedFiles == 0)
        #expect(try fixture.remainingFiles() == ["a.log", "b.log"])
        #expect(try fixture.deletions().isEmpty)

        let due = try policies.afterUpload(now: Date().addingTimeInterval(8 * 86_400))
        #expect(due?.deletedFiles == 2)
        #expect(try fixture.remainingFiles() == [])
        #expect(try fixture.deletions().count == 2)
    }

    @Test func afterUploadIsOffWithoutItsSectionOrWhenDisabled() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.file("a.log")
        _ = try fixture.upload()

        #expect(try fixture.policies(DeletionSettings()).afterUpload(now: Date()) == nil)
        let disabled = DeletionSettings(afterUpload: AfterUploadDeletion(enabled: false, keepDays: 0))
        #expect(try fixture.policies(disabled).afterUpload(now: Date()) == nil)
        #expect(try fixture.remainingFiles() == ["a.log"])
    }

    @Test func fileModifiedAfterItsUploadIsKept() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let past = Date().addingTimeInterval(-20 * 86_400)
        try fixture.tree.file("grown.log", size: 100, mtime: past)
        try fixture.tree.file("touched.log", size: 100, mtime: past)
        try fixture.tree.file("same.log", size: 100, mtime: past)
        _ = try fixture.upload()
        let handle = try FileHandle(forWritingTo: fixture.tree.root.appendingPathComponent("grown.log"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("more".utf8))
        try handle.close()
        try FileManager.default.setAttributes([.modificationDate: past], ofItemAtPath: fixture.path("grown.log"))
        try FileManager.default.setAttributes(
            [.modificationDate: past.addingTimeInterval(1)],
            ofItemAtPath: fixture.path("touched.log")
        )
        let settings = DeletionSettings(
            afterUpload: AfterUploadDeletion(keepDays: 0),
            age: AgeDeletion(maxAgeDays: 14)
        )

        let afterUpload = try fixture.policies(settings).afterUpload(now: Date())
        let age = try fixture.policies(settings).ageBased(now: Date())

        #expect(afterUpload?.deletedFiles == 1)
        #expect(afterUpload?.changedSinceUpload == 2)
        #expect(age?.deletedFiles == 0)
        #expect(age?.keptUnuploaded == 2, "the changed versions were never uploaded")
        #expect(try fixture.remainingFiles() == ["grown.log", "touched.log"])
        #expect(try fixture.deletions().map(\.path) == [fixture.path("same.log")])
    }

    /// A logger that paused longer than the stability time had its file uploaded; while it still holds the file
    /// open, deleting it would lose whatever it writes next.
    @Test func fileAnotherProcessHasOpenIsKeptUntilClosed() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.file("open.log", size: 100)
        try fixture.tree.file("closed.log", size: 100)
        _ = try fixture.upload()
        let settings = DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0))
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/bin/sh")
        writer.arguments = ["-c", "exec 3>>\"$0\"; sleep 30", fixture.path("open.log")]
        try writer.run()
        defer { writer.terminate() }
        Thread.sleep(forTimeInterval: 0.3)

        let first = try fixture.policies(settings).afterUpload(now: Date())
        #expect(first?.deletedFiles == 1)
        #expect(try fixture.remainingFiles() == ["open.log"])

        writer.terminate()
        writer.waitUntilExit()
        let second = try fixture.policies(settings).afterUpload(now: Date())
        #expect(second?.deletedFiles == 1)
        #expect(try fixture.remainingFiles() == [])
    }

    @Test func fileNeverUploadedIsNeverDeletedByAfterUploadOrAge() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let old = Date().addingTimeInterval(-30 * 86_400)
        try fixture.tree.file("uploaded.log", mtime: old)
        _ = try fixture.upload()
        try fixture.tree.file("never.log", mtime: old)
        let settings = DeletionSettings(
            afterUpload: AfterUploadDeletion(keepDays: 0),
            age: AgeDeletion(maxAgeDays: 14)
        )

        let afterUpload = try fixture.policies(settings).afterUpload(now: Date().addingTimeInterval(365 * 86_400))
        let age = try fixture.policies(settings).ageBased(now: Date())

        #expect(afterUpload?.deletedFiles == 1)
        #expect(age?.deletedFiles == 0)
        #expect(age?.keptUnuploaded == 1)
        #expect(try fixture.remainingFiles() == ["never.log"])
        #expect(try fixture.deletions().allSatisfy(\.wasUploaded))
    }

    @Test func afterUploadMarksFilesAlreadyGoneWithoutRecordingADeletion() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.file("kept.log")
        try fixture.tree.file("removed-by-hand.log")
        _ = try fixture.upload()
        try FileManager.default.removeItem(atPath: fixture.path("removed-by-hand.log"))

        let report = try fixture.policies(DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0)))
            .afterUpload(now: Date())

        #expect(report?.deletedFiles == 1)
        #expect(try fixture.deletions().map(\.path) == [fixture.path("kept.log")])
        #expect(try fixture.count("SELECT count(*) FROM file_uploads WHERE local_deleted_at IS NULL") == 0)
    }

    @Test func afterUploadLeavesFilesOutsideTheConfiguredSources() throws {
        var fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.file("a.log")
        _ = try fixture.upload()
        let other = try TemporaryTree()
        defer { other.remove() }
        fixture.base.source = SourceSettings(path: other.root.path)

        let report = try fixture.policies(DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0)))
            .afterUpload(now: Date())

        #expect(report?.deletedFiles == 0)
        #expect(try fixture.remainingFiles() == ["a.log"])
        #expect(try fixture.deletions().isEmpty)
    }

    // MARK: - Age

    @Test func ageDeletesOldUploadedFilesAndKeepsOldOnesNeverUploaded() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let old = Date().addingTimeInterval(-20 * 86_400)
        try fixture.tree.file("old-1.log", size: 10, mtime: old)
        try fixture.tree.file("deep/old-2.log", size: 20, mtime: old)
        try fixture.tree.file("fresh.log", size: 30, mtime: Date().addingTimeInterval(-86_400))
        let session = try fixture.upload()
        try fixture.tree.file("old-never.log", size: 40, mtime: old)

        let report = try fixture.policies(DeletionSettings(age: AgeDeletion(maxAgeDays: 14))).ageBased(now: Date())

        #expect(report == expectedReport("age", deleted: 2, bytes: 30, keptUnuploaded: 1))
        #expect(try fixture.remainingFiles() == ["fresh.log", "old-never.log"])
        let rows = try fixture.deletions()
        #expect(Set(rows.map(\.path)) == [fixture.path("old-1.log"), fixture.path("deep/old-2.log")])
        #expect(rows.allSatisfy { $0.reason == "age" && $0.wasUploaded && $0.sessionID == session })
        #expect(try fixture.count("SELECT count(*) FROM file_uploads WHERE local_deleted_at IS NOT NULL") == 2)
        #expect(try fixture.policies(DeletionSettings()).ageBased(now: Date()) == nil)
    }

    /// A source that compresses its logs: the policies look the files up under the keys they went up under
    /// (`.zst` for the compressed ones), so compressed files count as uploaded like the others.
    @Test func ageFindsCompressedFilesUploadedUnderTheirZstKeys() throws {
        var fixture = try Fixture()
        defer { fixture.remove() }
        fixture.base.source?.compress = CompressSettings(codec: "zstd", include: ["*.log"])
        let old = Date().addingTimeInterval(-20 * 86_400)
        try fixture.tree.file("old-1.log", size: 4_000, mtime: old)
        try fixture.tree.file("deep/old-2.bin", size: 20, mtime: old)
        try fixture.tree.file("deep/old-3.log", size: 3_000, mtime: old)
        _ = try fixture.upload()
        #expect(
            try fixture.count("SELECT count(*) FROM file_uploads WHERE s3_key LIKE '%.zst' AND status = 'uploaded'")
                == 2
        )
        try fixture.tree.file("old-never.log", size: 40, mtime: old)

        let report = try fixture.policies(DeletionSettings(age: AgeDeletion(maxAgeDays: 14))).ageBased(now: Date())

        #expect(report == expectedReport("age", deleted: 3, bytes: 7_020, keptUnuploaded: 1))
        #expect(try fixture.remainingFiles() == ["old-never.log"])
        #expect(try fixture.deletions().allSatisfy { $0.reason == "age" && $0.wasUploaded })
    }

    @Test func ageKeepsAFileOnlyAnImportedRegistryRecordsAsUploaded() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let old = Date().addingTimeInterval(-20 * 86_400)
        try fixture.tree.file("old-1.log", size: 10, mtime: old)
        _ = try fixture.upload()
        let imported = try fixture.tree.file("imported.log", size: 40, mtime: old)
        var info = stat()
        try #require(stat(imported.path, &info) == 0)
        let mtime = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        let registry = fixture.tree.root.appendingPathComponent("processed_files.json").path
        try
            #"{"files": {"\#(imported.path)::40::\#(mtime)": {"filepath": "\#(imported.path)", "size": 40, "mtime": \#(mtime)}}}"#
            .write(toFile: registry, atomically: true, encoding: .utf8)
        let summary = try RegistryImport(config: fixture.base, databaseURL: fixture.database.url, logger: quietLogger)
            .run(registry: registry, queue: nil)
        #expect(summary.recorded == 1)

        let report = try fixture.policies(DeletionSettings(age: AgeDeletion(maxAgeDays: 14))).ageBased(now: Date())

        // The registry is enough not to send the file again, never to delete it: no checksum verifies it.
        #expect(report == expectedReport("age", deleted: 1, bytes: 10, keptUnuploaded: 1))
        #expect(try fixture.remainingFiles().contains("imported.log"))
    }

    @Test func ageWithIncludeUnuploadedDeletesThoseTooAsNotUploaded() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let old = Date().addingTimeInterval(-20 * 86_400)
        try fixture.tree.file("old.log", size: 10, mtime: old)
        try fixture.tree.file("fresh.log", size: 30)
        _ = try fixture.upload()
        try fixture.tree.file("old-never.log", size: 40, mtime: old)
        let logs = LogCapture()

        let report = try fixture.policies(
            DeletionSettings(age: AgeDeletion(maxAgeDays: 14, includeUnuploaded: true)),
            logger: logs.logger
        ).ageBased(now: Date())

        #expect(report == expectedReport("age", deleted: 2, bytes: 50, deletedUnuploaded: 1))
        #expect(try fixture.remainingFiles() == ["fresh.log"])
        let never = try #require(try fixture.deletions().first { $0.path == fixture.path("old-never.log") })
        #expect(!never.wasUploaded)
        #expect(never.sessionID == nil)
        #expect(
            logs.contains(
                level: .warning,
                "deleting a file that was never uploaded",
                path: fixture.path("old-never.log")
            )
        )
    }

    // MARK: - Emergency

    /// Eight uploaded files of 1000 bytes (10…3 days old) and two never uploaded (20 and 19 days old) on a fake
    /// 10,000-byte disk: 100 % full.
    private func emergencyFixture() throws -> (Fixture, Int64) {
        let fixture = try Fixture()
        let now = Date()
        for day in 3...10 {
            try fixture.tree.file("up-\(day).log", size: 1000, mtime: now.addingTimeInterval(Double(-day) * 86_400))
        }
        let session = try fixture.upload()
        try fixture.tree.file("never-20.log", size: 1000, mtime: now.addingTimeInterval(-20 * 86_400))
        try fixture.tree.file("never-19.log", size: 1000, mtime: now.addingTimeInterval(-19 * 86_400))
        return (fixture, session)
    }

    @Test func emergencyDeletesOldestUploadedFilesFirstAndStopsBelowWarn() throws {
        let (fixture, session) = try emergencyFixture()
        defer { fixture.remove() }
        let settings = DeletionSettings(emergency: EmergencyDeletion(warnPercent: 70, actPercent: 95))

        let report = try fixture.policies(settings, diskUsage: fixture.fakeDisk(totalBytes: 10_000))
            .emergency(now: Date())

        #expect(report == expectedReport("emergency", deleted: 4, bytes: 4000, keptUnuploaded: 2))
        #expect(
            try fixture.remainingFiles() == [
                "never-19.log", "never-20.log", "up-3.log", "up-4.log", "up-5.log", "up-6.log",
            ]
        )
        let rows = try fixture.deletions()
        #expect(rows.map(\.path) == ["up-10.log", "up-9.log", "up-8.log", "up-7.log"].map(fixture.path))
        #expect(rows.allSatisfy { $0.reason == "emergency" && $0.wasUploaded && $0.sessionID == session })
    }

    @Test func emergencyWithIncludeUnuploadedLeavesThemWhenUploadedFilesSuffice() throws {
        let (fixture, _) = try emergencyFixture()
        defer { fixture.remove() }
        let settings = DeletionSettings(
            emergency: EmergencyDeletion(warnPercent: 70, actPercent: 95, includeUnuploaded: true)
        )

        let report = try fixture.policies(settings, diskUsage: fixture.fakeDisk(totalBytes: 10_000))
            .emergency(now: Date())

        #expect(report == expectedReport("emergency", deleted: 4, bytes: 4000, keptUnuploaded: 2))
        #expect(fixture.exists("never-19.log") && fixture.exists("never-20.log"))
        #expect(try fixture.deletions().allSatisfy(\.wasUploaded))
    }

    @Test func emergencyWithIncludeUnuploadedGoesOnToThemOnlyWhileStillAboveWarn() throws {
        let (fixture, _) = try emergencyFixture()
        defer { fixture.remove() }
        let settings = DeletionSettings(
            emergency: EmergencyDeletion(warnPercent: 15, actPercent: 95, includeUnuploaded: true)
        )
        let logs = LogCapture()

        let report = try fixture.policies(
            settings,
            logger: logs.logger,
            diskUsage: fixture.fakeDisk(totalBytes: 10_000)
        )
        .emergency(now: Date())

        #expect(
            report == expectedReport("emergency", deleted: 9, bytes: 9000, deletedUnuploaded: 1, keptUnuploaded: 1)
        )
        #expect(try fixture.remainingFiles() == ["never-19.log"])
        let rows = try fixture.deletions()
        #expect(rows.filter(\.wasUploaded).count == 8)
        #expect(rows.filter { !$0.wasUploaded }.map(\.path) == [fixture.path("never-20.log")])
        #expect(rows.last?.path == fixture.path("never-20.log"), "never-uploaded files come after every uploaded one")
        #expect(
            logs.contains(level: .error, "deleting a file that was never uploaded", path: fixture.path("never-20.log"))
        )
    }

    @Test func emergencyOnlyWarnsBetweenWarnAndActAndWhenThePolicyIsOff() throws {
        let (fixture, _) = try emergencyFixture()
        defer { fixture.remove() }
        let disk = fixture.fakeDisk(totalBytes: 10_800)  // 92.6 % full
        let logs = LogCapture()

        let between = try fixture.policies(
            DeletionSettings(emergency: EmergencyDeletion(warnPercent: 90, actPercent: 95)),
            logger: logs.logger,
            diskUsage: disk
        ).emergency(now: Date())
        let absent = try fixture.policies(DeletionSettings(), logger: logs.logger, diskUsage: disk)
            .emergency(now: Date())
        let offWhileFull = try fixture.policies(
            DeletionSettings(emergency: EmergencyDeletion(enabled: false)),
            logger: logs.logger,
            diskUsage: fixture.fakeDisk(totalBytes: 10_000)
        ).emergency(now: Date())
        let calm = try fixture.policies(
            DeletionSettings(emergency: EmergencyDeletion()),
            diskUsage: fixture.fakeDisk(totalBytes: 100_000)
        ).emergency(now: Date())

        #expect(between == nil && absent == nil && offWhileFull == nil && calm == nil)
        #expect(try fixture.remainingFiles().count == 10)
        #expect(try fixture.deletions().isEmpty)
        #expect(logs.count(level: .warning) { $0.contains("% full") } == 3)
    }

    @Test func emergencyKeepsReservedGbFreeBelowActPercentToo() throws {
        let (fixture, _) = try emergencyFixture()
        defer { fixture.remove() }
        // 10,000 of 15,000 bytes used: 66.7 %, far below warn and act, but 5,000 bytes free of 5,500 reserved.
        let reserved = EmergencyDeletion(warnPercent: 90, actPercent: 95, reservedGb: 5_500 / 1_073_741_824)
        let disk = fixture.fakeDisk(totalBytes: 15_000)

        let report = try fixture.policies(DeletionSettings(emergency: reserved), diskUsage: disk).emergency(now: Date())
        let unreserved = try fixture.policies(
            DeletionSettings(emergency: EmergencyDeletion(warnPercent: 90, actPercent: 95)),
            diskUsage: disk
        ).emergency(now: Date())

        #expect(report == expectedReport("emergency", deleted: 1, bytes: 1000, keptUnuploaded: 2))
        #expect(try fixture.deletions().map(\.path) == [fixture.path("up-10.log")], "the oldest uploaded file")
        #expect(unreserved == nil, "6,000 bytes free and 60 % full: nothing to do without the reserve")
    }

    // MARK: - Sources that keep their files

    /// A source below `/var` (here `/var/tmp`) keeps every file under every policy (after upload at once, age,
    /// emergency on a full disk, each with `include_unuploaded`) unless it says `allow_deletion: true`; with it,
    /// the same setup deletes them all.
    @Test(arguments: [nil, false, true] as [Bool?])
    func sourceBelowVarKeepsItsFilesUnlessItAllowsDeletion(allowDeletion: Bool?) throws {
        let fixture = try Fixture(under: URL(fileURLWithPath: "/var/tmp"), allowDeletion: allowDeletion)
        defer { fixture.remove() }
        let old = Date().addingTimeInterval(-30 * 86_400)
        try fixture.tree.file("a.log", size: 1000, mtime: old)
        try fixture.tree.file("sub/b.log", size: 1000, mtime: old)
        try fixture.tree.file("c.log", size: 1000)
        _ = try fixture.upload()
        try fixture.tree.file("never.log", size: 1000, mtime: old)
        let settings = DeletionSettings(
            afterUpload: AfterUploadDeletion(keepDays: 0),
            age: AgeDeletion(maxAgeDays: 14, includeUnuploaded: true),
            emergency: EmergencyDeletion(warnPercent: 1, actPercent: 2, includeUnuploaded: true)
        )
        let policies = try fixture.policies(settings, diskUsage: fixture.fakeDisk(totalBytes: 4_000))

        let emergency = try policies.emergency(now: Date())
        let age = try policies.ageBased(now: Date())
        let afterUpload = try policies.afterUpload(now: Date())

        if allowDeletion == true {
            #expect(try fixture.remainingFiles() == [])
            #expect(try fixture.deletions().count == 4)
            #expect((emergency?.deletedFiles ?? 0) + (age?.deletedFiles ?? 0) + (afterUpload?.deletedFiles ?? 0) == 4)
        } else {
            #expect(try fixture.remainingFiles() == ["a.log", "c.log", "never.log", "sub/b.log"])
            #expect(try fixture.deletions().isEmpty)
            #expect(try fixture.count("SELECT count(*) FROM local_deletions") == 0, "not even an intent")
            #expect(emergency == nil && age?.deletedFiles == 0 && afterUpload?.deletedFiles == 0)
        }
    }

    /// `upload.delete_after_upload` (validation refuses it with no source allowing deletion; the session does not
    /// rely on that): a protected source keeps the files the run uploads and the files it skips as already
    /// stored, and the same source with `allow_deletion: true` loses both.
    @Test(arguments: [nil, true] as [Bool?])
    func deleteAfterUploadKeepsTheFilesOfASourceBelowVar(allowDeletion: Bool?) throws {
        var fixture = try Fixture(under: URL(fileURLWithPath: "/var/tmp"), allowDeletion: allowDeletion)
        defer { fixture.remove() }
        try fixture.tree.file("stored.log", size: 500)
        _ = try fixture.upload()  // stored.log is in the bucket; the next run skips it
        try fixture.tree.file("new.log", size: 700)
        fixture.base.upload?.deleteAfterUpload = true

        _ = try fixture.upload()

        if allowDeletion == true {
            #expect(try fixture.remainingFiles() == [])
            #expect(try fixture.deletions().count == 2)
        } else {
            #expect(try fixture.remainingFiles() == ["new.log", "stored.log"])
            #expect(try fixture.deletions().isEmpty)
        }
        #expect(try fixture.count("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'") == 2)
    }

    /// The one deletion path itself refuses a file whose source directory it was not given as deletable,
    /// records nothing for it, and still deletes the others of the batch, each outcome in its place.
    @Test func theDeleterRefusesFilesOfSourcesNotGivenAsDeletable() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let kept = try TemporaryTree(under: URL(fileURLWithPath: "/var/tmp"))
        defer { kept.remove() }
        try fixture.tree.file("gone.log")
        _ = try fixture.upload()
        let ids = try fixture.ids()
        func candidate(_ url: URL, root: URL) throws -> LocalDeleter.Candidate {
            LocalDeleter.Candidate(
                path: Array(url.path.utf8),
                displayPath: url.path,
                root: Array(root.path.utf8),
                expected: try LocalFile(path: url.path).status().identity,
                wasUploaded: true,
                sessionID: nil,
                bucket: "",
                key: ""
            )
        }
        let batch = [
            try candidate(kept.file("a.log"), root: kept.root),
            try candidate(fixture.tree.root.appendingPathComponent("gone.log"), root: fixture.tree.root),
            try candidate(kept.file("b.log"), root: kept.root),
        ]
        let ledger = try fixture.database.ledger()
        let deletable = Set([Array(fixture.tree.root.path.utf8)])

        let outcomes = try LocalDeleter(
            ledger: ledger,
            projectID: ids.project,
            deviceID: ids.device,
            logger: quietLogger,
            deletableRoots: deletable
        ).delete(batch, reason: "emergency")
        let unconfigured = try LocalDeleter(
            ledger: ledger,
            projectID: ids.project,
            deviceID: ids.device,
            logger: quietLogger
        )
        .delete([batch[0]], reason: "emergency")

        let refused = LocalRemoval.Outcome.failed(LocalDeleter.protectedReason)
        #expect(outcomes == [refused, .removed, refused])
        #expect(unconfigured == [refused], "a deleter given no deletable source deletes nothing")
        #expect(try FileManager.default.contentsOfDirectory(atPath: kept.root.path).sorted() == ["a.log", "b.log"])
        #expect(try fixture.deletions().map(\.path) == [fixture.path("gone.log")])
    }

    // MARK: - The ledger must confirm first

    @Test func unreachableLedgerMakesEveryPolicyThrowAndDeletesNothing() throws {
        let (fixture, _) = try emergencyFixture()
        defer { fixture.remove() }
        let ids = try fixture.ids()
        let ledger = try fixture.database.ledger()
        let admin = try fixture.database.connect()
        try admin.execute(
            """
            SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
            WHERE datname = \(fixture.database.name) AND pid <> pg_backend_pid()
            """
        )
        let policies = DeletionPolicies(
            config: fixture.config(
                DeletionSettings(
                    afterUpload: AfterUploadDeletion(keepDays: 0),
                    age: AgeDeletion(maxAgeDays: 1, includeUnuploaded: true),
                    emergency: EmergencyDeletion(warnPercent: 10, actPercent: 50, includeUnuploaded: true)
                )
            ),
            ledger: ledger,
            projectID: ids.project,
            deviceID: ids.device,
            logger: quietLogger,
            diskUsage: fixture.fakeDisk(totalBytes: 10_000)
        )

        #expect(throws: LedgerError.self) { try policies.afterUpload(now: Date()) }
        #expect(throws: LedgerError.self) { try policies.ageBased(now: Date()) }
        #expect(throws: LedgerError.self) { try policies.emergency(now: Date()) }

        #expect(try fixture.remainingFiles().count == 10)
        #expect(try fixture.deletions().isEmpty)
    }

    @Test func ledgerThatCannotRecordTheDeletionsKeepsEveryFile() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.file("a.log")
        try fixture.tree.file("b.log")
        _ = try fixture.upload()
        try fixture.database.refuse("INSERT", on: "local_deletions")

        #expect(throws: LedgerError.self) {
            try fixture.policies(DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0))).afterUpload(
                now: Date()
            )
        }

        #expect(try fixture.remainingFiles() == ["a.log", "b.log"], "the deletions were not recorded, so nothing went")
        #expect(try fixture.count("SELECT count(*) FROM file_uploads WHERE local_deleted_at IS NOT NULL") == 0)
    }

    @Test func confirmationThatFailsAfterDeletingLogsTheFilesAndTheNextRunSettlesThem() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.file("a.log")
        try fixture.tree.file("b.log")
        _ = try fixture.upload()
        try fixture.database.refuse("UPDATE", on: "local_deletions")
        let logs = LogCapture()
        let settings = DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0))

        #expect(throws: LocalDeleter.UnconfirmedDeletions.self) {
            try fixture.policies(settings, logger: logs.logger).afterUpload(now: Date())
        }

        #expect(try fixture.remainingFiles() == [], "the intents were recorded, so the files went")
        #expect(try fixture.count("SELECT count(*) FROM local_deletions WHERE state = 'intended'") == 2)
        let error = try #require(logs.entries.first { $0.level == .error })
        #expect(error.text.contains(fixture.path("a.log")) && error.text.contains(fixture.path("b.log")))

        try fixture.database.allow(on: "local_deletions")
        let report = try fixture.policies(settings).afterUpload(now: Date())

        #expect(report?.deletedFiles == 0)
        #expect(try fixture.count("SELECT count(*) FROM local_deletions WHERE state = 'deleted'") == 2)
        #expect(try fixture.count("SELECT count(*) FROM file_uploads WHERE local_deleted_at IS NOT NULL") == 2)
    }

    @Test func aFileListedTwiceIsDeletedAndRecordedOnce() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let url = try fixture.tree.file("twice.log")
        _ = try fixture.upload()
        let ids = try fixture.ids()
        let candidate = LocalDeleter.Candidate(
            path: Array(url.path.utf8),
            displayPath: url.path,
            root: Array(fixture.tree.root.path.utf8),
            expected: try LocalFile(path: url.path).status().identity,
            wasUploaded: true,
            sessionID: nil,
            bucket: "",
            key: ""
        )
        let deleter = LocalDeleter(
            ledger: try fixture.database.ledger(),
            projectID: ids.project,
            deviceID: ids.device,
            logger: quietLogger,
            deletableRoots: [candidate.root]
        )

        let outcomes = try deleter.delete([candidate, candidate], reason: "age")

        #expect(outcomes == [.removed, .vanished])
        #expect(try fixture.count("SELECT count(*) FROM local_deletions WHERE state = 'deleted'") == 1)
        #expect(try fixture.count("SELECT count(*) FROM local_deletions WHERE state = 'intended'") == 0)
    }

    @Test func intentsADeadProcessLeftAreConfirmedWhenTheFileIsGoneAndWithdrawnWhenNot() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.file("gone.log")
        try fixture.tree.file("still-here.log")
        _ = try fixture.upload()
        let ids = try fixture.ids()
        // A process that is gone (no such pid) recorded both intents and removed only one file before it died.
        let dead = "\(ProcessInfo.processInfo.hostName):\(Int32.max - 7)"
        let connection = try fixture.database.connect()
        for name in ["gone.log", "still-here.log"] {
            try connection.execute(
                """
                INSERT INTO local_deletions (device_id, local_path, size_bytes, mtime, reason, was_uploaded, bucket,
                                             s3_key, state, holder)
                SELECT \(ids.device), local_path, size_bytes, mtime, 'after_upload', true, bucket, s3_key,
                       'intended', \(dead)
                FROM file_uploads WHERE local_path = \(fixture.path(name))
                """
            )
        }
        try FileManager.default.removeItem(atPath: fixture.path("gone.log"))

        let settled = try LocalDeleter(
            ledger: try fixture.database.ledger(),
            projectID: ids.project,
            deviceID: ids.device,
            logger: quietLogger
        ).settleLeftovers()

        #expect(settled.deleted == 1 && settled.withdrawn == 1)
        #expect(try fixture.remainingFiles() == ["still-here.log"])
        #expect(try fixture.deletions().map(\.path) == [fixture.path("gone.log")])
        #expect(try fixture.count("SELECT count(*) FROM local_deletions WHERE state = 'intended'") == 0)
        #expect(
            try fixture.count("SELECT count(*) FROM file_uploads WHERE local_deleted_at IS NOT NULL") == 1,
            "the gone file's upload row knows its local copy is gone"
        )
    }

    // MARK: - Only regular files inside the sources

    @Test func afterUploadKeepsAFileReplacedByAnotherOfTheSameSizeAndMtime() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.file("kept.log")
        try fixture.tree.file("same.log")
        _ = try fixture.upload()
        // Another file of the same size, given the same mtime to the nanosecond, renamed over the uploaded one.
        let original = fixture.path("same.log")
        let impostor = fixture.path(".same.log.new")
        let length = try FileManager.default.attributesOfItem(atPath: original)[.size] as? Int ?? 0
        try Data(repeating: UInt8(ascii: "z"), count: length).write(to: URL(fileURLWithPath: impostor))
        let touch = Process()
        touch.executableURL = URL(fileURLWithPath: "/usr/bin/touch")
        touch.arguments = ["-r", original, impostor]
        try touch.run()
        touch.waitUntilExit()
        #expect(rename(impostor, original) == 0)

        let report = try fixture.policies(DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0)))
            .afterUpload(now: Date())

        #expect(report?.deletedFiles == 1)
        #expect(report?.changedSinceUpload == 1)
        #expect(try fixture.remainingFiles() == ["same.log"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: original)).allSatisfy { $0 == UInt8(ascii: "z") })
    }

    @Test func afterUploadNeverDeletesThroughADirectorySwappedForALinkAfterTheUpload() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let outside = try TemporaryTree()
        defer { outside.remove() }
        try fixture.tree.file("run/a.log")
        _ = try fixture.upload()
        // The uploaded directory moves away and a link to a copy outside the source takes its name: the same
        // name, size and mtime are now reached through the link.
        try FileManager.default.moveItem(
            atPath: fixture.path("run"),
            toPath: outside.root.appendingPathComponent("run").path
        )
        try FileManager.default.createSymbolicLink(
            atPath: fixture.path("run"),
            withDestinationPath: outside.root.appendingPathComponent("run").path
        )

        let report = try fixture.policies(DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0)))
            .afterUpload(now: Date())

        #expect(report?.deletedFiles == 0)
        #expect(FileManager.default.fileExists(atPath: outside.root.appendingPathComponent("run/a.log").path))
        #expect(try fixture.deletions().isEmpty)
    }

    @Test func symbolicLinksAreNeverFollowedForDeletion() throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let outside = try TemporaryTree()
        defer { outside.remove() }
        let old = Date().addingTimeInterval(-20 * 86_400)
        try fixture.tree.file("real/a.log", mtime: old)
        try outside.file("dir/b.log", mtime: old)
        try outside.file("c.log", mtime: old)
        try FileManager.default.createSymbolicLink(
            atPath: fixture.path("linked"),
            withDestinationPath: outside.root.appendingPathComponent("dir").path
        )
        try FileManager.default.createSymbolicLink(
            atPath: fixture.path("c.log"),
            withDestinationPath: outside.root.appendingPathComponent("c.log").path
        )
        var fixtureFollowing = fixture
        fixtureFollowing.base.scan = ScanSettings(followSymlinks: true)
        _ = try fixtureFollowing.upload()
        #expect(try fixture.count("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'") == 3)

        let report = try fixtureFollowing.policies(
            DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0), age: AgeDeletion(maxAgeDays: 14))
        ).ageBased(now: Date())
        let afterUpload = try fixtureFollowing.policies(DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0)))
            .afterUpload(now: Date())

        #expect(report?.deletedFiles == 1)
        #expect(report?.changedSinceUpload == 2)
        #expect(afterUpload?.deletedFiles == 0)
        #expect(afterUpload?.changedSinceUpload == 2)
        #expect(!fixture.exists("real/a.log"))
        #expect(FileManager.default.fileExists(atPath: outside.root.appendingPathComponent("dir/b.log").path))
        #expect(FileManager.default.fileExists(atPath: outside.root.appendingPathComponent("c.log").path))
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: fixture.path("linked"))) != nil)
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: fixture.path("c.log"))) != nil)
        #expect(try fixture.deletions().map(\.path) == [fixture.path("real/a.log")])
    }

    @Test func emptyDirectoriesGoOnlyWhenConfiguredAndNeverTheSourceDirectory() throws {
        var fixture = try Fixture()
        defer { fixture.remove() }
        try fixture.tree.file("a/b/one.log")
        try fixture.tree.file("c/two.log")
        try fixture.tree.file("c/keep/three.log")
        _ = try fixture.upload()
        try fixture.tree.file("c/late.log")  // never uploaded: c stays
        fixture.base.upload?.removeEmptyDirectories = true

        let report = try fixture.policies(DeletionSettings(afterUpload: AfterUploadDeletion(keepDays: 0)))
            .afterUpload(now: Date())

        #expect(report?.deletedFiles == 3)
        #expect(!fixture.exists("a"))
        #expect(!fixture.exists("c/keep"))
        #expect(fixture.exists("c/late.log"))
        #expect(fixture.exists(""), "the source directory itself stays")
    }

    // MARK: - Fixture

    private func expectedReport(
        _ reason: String,
        deleted: Int,
        bytes: Int64,
        deletedUnuploaded: Int = 0,
        keptUnuploaded: Int = 0,
        changed: Int = 0
    ) -> DeletionReport {
        var report = DeletionReport(reason: reason)
        report.deletedFiles = deleted
        report.deletedBytes = bytes
        report.deletedUnuploaded = deletedUnuploaded
        report.keptUnuploaded = keptUnuploaded
        report.changedSinceUpload = changed
        return report
    }
}

/// One `local_deletions` row.
private struct DeletionRow {
    var deviceID: Int64?
    var sessionID: Int64?
    var path: String
    var size: Int64
    var reason: String
    var wasUploaded: Bool
}

/// A database, an S3 prefix and a source tree for one test, with a configuration that uploads the tree.
private struct Fixture {
    let s3: TestS3
    let database: TestDatabase
    let tree: TemporaryTree
    /// The configuration without its deletion section.
    var base: FleetConfig

    /// - Parameters:
    ///   - parent: where the source directory is made (`/var/tmp`: below a protected directory).
    ///   - allowDeletion: the source's `allow_deletion`, nil to leave it out.
    init(under parent: URL = FileManager.default.temporaryDirectory, allowDeletion: Bool? = nil) throws {
        s3 = try TestS3()
        database = try TestDatabase()
        tree = try TemporaryTree(under: parent)
        base = s3.config(source: tree.root.path)
        base.source?.allowDeletion = allowDeletion
        base.device = "rig-1"
        base.upload = UploadSettings(workers: 2)
    }

    func remove() {
        tree.remove()
        database.drop()
    }

    func config(_ deletion: DeletionSettings) -> FleetConfig {
        var config = base
        config.deletion = deletion
        return config
    }

    /// Uploads the tree as `upload` does; returns the session's id.
    func upload() throws -> Int64 {
        var session = UploadSession(config: base, configPath: nil, databaseURL: database.url, logger: quietLogger)
        session.environment = s3.environment
        let summary = try session.run(state: RunState(giveUpAfter: 600), progress: UploadProgress())
        try #require(summary.status == .completed, "upload: \(summary.message ?? "")")
        return summary.sessionID
    }

    func ids() throws -> (project: Int64, device: Int64) {
        let rows = try database.connect().execute(
            "SELECT (SELECT id FROM projects WHERE name = 'test'), (SELECT id FROM devices WHERE name = 'rig-1')"
        )
        return (try #require(rows.int64(0, 0)), try #require(rows.int64(0, 1)))
    }

    func policies(
        _ deletion: DeletionSettings,
        logger: Logger = quietLogger,
        diskUsage: @escaping (String) throws -> DiskUsage = { try DiskUsage.of(path: $0) }
    ) throws -> DeletionPolicies {
        let ids = try ids()
        return DeletionPolicies(
            config: config(deletion),
            ledger: try database.ledger(),
            projectID: ids.project,
            deviceID: ids.device,
            logger: logger,
            diskUsage: diskUsage
        )
    }

    /// A disk of `totalBytes` whose used bytes are the regular files left in the tree.
    func fakeDisk(totalBytes: Int64) -> (String) throws -> DiskUsage {
        let root = tree.root
        return { _ in
            var used: Int64 = 0
            let keys: [URLResourceKey] = [.fileSizeKey, .isRegularFileKey]
            let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: keys)
            while let url = files?.nextObject() as? URL {
                let values = try url.resourceValues(forKeys: Set(keys))
                if values.isRegularFile == true { used += Int64(values.fileSize ?? 0) }
            }
            return DiskUsage(
                totalBytes: totalBytes,
                usedBytes: used,
                availableBytes: totalBytes - used,
                fileSystemID: 1
            )
        }
    }

    func path(_ relative: String) -> String { tree.root.path + "/" + relative }

    /// Whether anything (a link too) has this name.
    func exists(_ relative: String) -> Bool {
        exists(pathBytes: Array((relative.isEmpty ? tree.root.path : path(relative)).utf8))
    }

    func exists(pathBytes: [UInt8]) -> Bool {
        var info = stat()
        return pathBytes.withCPath { lstat($0, &info) } == 0
    }

    /// Creates a file whose name is given as bytes (not necessarily UTF-8); returns its path's bytes.
    func writeFile(named name: [UInt8], size: Int) throws -> [UInt8] {
        let path = Array(tree.root.path.utf8) + [UInt8(ascii: "/")] + name
        let descriptor = path.withCPath { open($0, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        guard descriptor >= 0 else { throw TestEnvironmentError(description: "cannot create a test file") }
        defer { close(descriptor) }
        let bytes = [UInt8](repeating: 7, count: size)
        guard bytes.withUnsafeBytes({ write(descriptor, $0.baseAddress, $0.count) }) == size else {
            throw TestEnvironmentError(description: "cannot write a test file")
        }
        return path
    }

    /// The regular files and symbolic links left in the tree, relative and sorted (invalid UTF-8 as `%XX`).
    func remainingFiles() throws -> [String] {
        let root = tree.root.path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/find")
        process.arguments = [root, "-mindepth", "1", "(", "-type", "f", "-o", "-type", "l", ")", "-printf", "%P\\0"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Array(data).split(separator: 0).map { PathText.escaped($0) }.sorted()
    }

    func deletions() throws -> [DeletionRow] {
        let rows = try database.connect().execute(
            """
            SELECT device_id, session_id, local_path, size_bytes, reason, was_uploaded
            FROM local_deletions ORDER BY id
            """
        )
        return (0..<rows.rowCount).map { row in
            DeletionRow(
                deviceID: rows.int64(row, 0),
                sessionID: rows.int64(row, 1),
                path: rows.string(row, 2) ?? "",
                size: rows.int64(row, 3) ?? -1,
                reason: rows.string(row, 4) ?? "",
                wasUploaded: rows.bool(row, 5) ?? false
            )
        }
    }

    func count(_ sql: String) throws -> Int {
        try database.connect().execute(PGQuery(unsafeSQL: sql)).int(0, 0) ?? -1
    }
}
