import FleetSystem
import Foundation
import Testing

@testable import FleetCore

/// What the agent keeps about the files in its sources: pending files whole, handled versions as fingerprints only.
struct StabilityTrackerTests {
    private static let start = Date(timeIntervalSince1970: 1_800_000_000)

    private static func file(_ name: String, source: Int = 0) -> SourceFile {
        SourceFile(source: source, relativePath: Array(name.utf8))
    }

    private static func version(_ size: Int64, mtime: Int64 = 1_700_000_000) -> FileVersion {
        FileVersion(size: size, mtime: Timestamp(seconds: mtime, nanoseconds: 0))
    }

    /// One complete scan that finds `files`, all young enough to be taken up and settled.
    private static func scan(
        _ tracker: inout StabilityTracker,
        _ files: [(SourceFile, FileVersion)],
        now: Date = start,
        complete: Bool = true
    ) -> [SourceFile] {
        tracker.beginScan()
        let ready = files.filter { tracker.scanned($0.0, $0.1, take: true, settled: true, now: now) }.map(\.0)
        tracker.endScan(complete: complete)
        return ready
    }

    @Test func aHandledVersionIsNeverQueuedAgainButANewVersionSettlesAgain() {
        var tracker = StabilityTracker(stabilitySeconds: 10)
        let log = Self.file("a.log")
        let first = Self.scan(&tracker, [(log, Self.version(5))])
        #expect(first == [log])
        tracker.markHandled(log, Self.version(5))
        #expect(tracker.pendingCount == 0 && tracker.handledCount == 1)

        let again = Self.scan(&tracker, [(log, Self.version(5))])
        #expect(again.isEmpty, "a rescan does not queue it again")
        let observed = tracker.observe(log, Self.version(5), now: Self.start)
        #expect(observed == false, "nor does a file event")
        #expect(tracker.knows(log, Self.version(5)))
        #expect(tracker.pendingCount == 0)

        tracker.observe(log, Self.version(9), now: Self.start)
        #expect(tracker.settlingCount == 1, "the file grew: the new version settles")
        let promoted = tracker.promote(now: Self.start.addingTimeInterval(10)) { _ in Self.version(9) }
        #expect(promoted == [log])
        #expect(tracker.ready.map(\.version) == [Self.version(9)])
    }

    @Test func aCompleteScanForgetsWhatItDidNotFindAndAnIncompleteOneNothing() {
        var tracker = StabilityTracker(stabilitySeconds: 10)
        let kept = Self.file("kept.log")
        let gone = Self.file("gone.log")
        let pending = Self.file("pending.log")
        _ = Self.scan(&tracker, [(kept, Self.version(1)), (gone, Self.version(2)), (pending, Self.version(3))])
        tracker.markHandled(kept, Self.version(1))
        tracker.markHandled(gone, Self.version(2))

        _ = Self.scan(&tracker, [(kept, Self.version(1))], complete: false)
        #expect(tracker.handledCount == 2 && tracker.pendingCount == 1, "a scan that failed midway forgets nothing")

        _ = Self.scan(&tracker, [(kept, Self.version(1))])
        #expect(tracker.handledCount == 1)
        #expect(tracker.pendingCount == 0, "the pending file is gone from disk: forgotten")
        let back = Self.scan(&tracker, [(gone, Self.version(2))])
        #expect(back == [gone], "a file back after it was forgotten is new")
    }

    @Test func aFileTooOldToBeTakenUpKeepsItsPendingStateButNotItsFingerprint() {
        var tracker = StabilityTracker(stabilitySeconds: 10)
        let handled = Self.file("handled.log")
        let waiting = Self.file("waiting.log")
        _ = Self.scan(&tracker, [(handled, Self.version(1)), (waiting, Self.version(2))])
        tracker.markHandled(handled, Self.version(1))

        tracker.beginScan()
        let readied = [
            tracker.scanned(handled, Self.version(1), take: false, settled: true, now: Self.start),
            tracker.scanned(waiting, Self.version(2), take: false, settled: true, now: Self.start),
        ]
        #expect(readied == [false, false])
        tracker.endScan(complete: true)
        #expect(tracker.handledCount == 0, "an old file is not taken up again, so nothing needs remembering")
        #expect(tracker.ready.map(\.file) == [waiting], "a queued file stays queued")
        #expect(!tracker.knows(handled, Self.version(1)))
    }

    @Test func sameNameInAnotherSourceOrAnotherMtimeIsAnotherVersion() {
        var tracker = StabilityTracker(stabilitySeconds: 10)
        let first = Self.file("x.log", source: 0)
        _ = Self.scan(&tracker, [(first, Self.version(7))])
        tracker.markHandled(first, Self.version(7))
        #expect(!tracker.knows(Self.file("x.log", source: 1), Self.version(7)))
        #expect(!tracker.knows(first, Self.version(7, mtime: 1_700_000_001)))
        #expect(!tracker.knows(first, Self.version(8)))
        #expect(tracker.knows(first, Self.version(7)))
    }

    @Test func manyHandledFilesAreRememberedAsFingerprintsOnly() {
        var tracker = StabilityTracker(stabilitySeconds: 10)
        let files = (0..<50_000).map { (Self.file("run/\($0).log"), Self.version(Int64($0))) }
        let first = Self.scan(&tracker, files)
        #expect(first.count == files.count)
        for (file, version) in files { tracker.markHandled(file, version) }
        #expect(tracker.pendingCount == 0)
        #expect(tracker.handledCount == files.count)
        #expect(files.allSatisfy { tracker.knows($0.0, $0.1) }, "folded from the recent set into the sorted array")
        let again = Self.scan(&tracker, files)
        #expect(again.isEmpty, "a rescan queues none of them")
        #expect(tracker.handledCount == files.count)
        #expect(files.allSatisfy { tracker.knows($0.0, $0.1) })
    }

    @Test func filesTheLedgerStoresAreHandledDuringAScanWithoutEverBeingQueued() {
        var tracker = StabilityTracker(stabilitySeconds: 10)
        let stored = (0..<3).map { (Self.file("stored-\($0).log"), Self.version(Int64($0))) }
        let fresh = Self.file("fresh.log")
        tracker.beginScan()
        for (file, version) in stored { tracker.markStored(file, version) }
        let ready = tracker.scanned(fresh, Self.version(9), take: true, settled: true, now: Self.start)
        tracker.endScan(complete: false)
        #expect(ready)
        #expect(tracker.pendingCount == 1 && tracker.handledCount == 3, "kept even when the scan was cut short")
        #expect(stored.allSatisfy { tracker.knows($0.0, $0.1) })

        let again = Self.scan(&tracker, stored + [(fresh, Self.version(9))])
        #expect(again.isEmpty, "the next scan finds them handled")
        #expect(tracker.handledCount == 3)
    }

    @Test func aScanHoldsBackOnlyFilesItDoesNotKnowUntilTheLedgerAnswers() {
        var tracker = StabilityTracker(stabilitySeconds: 10)
        let handled = Self.file("handled.log")
        let pending = Self.file("pending.log")
        let unknown = Self.file("unknown.log")
        _ = Self.scan(&tracker, [(handled, Self.version(1)), (pending, Self.version(2))])
        tracker.markHandled(handled, Self.version(1))

        tracker.beginScan()
        let outcomes = [(handled, Self.version(1)), (pending, Self.version(2)), (unknown, Self.version(3))].map {
            tracker.scanned($0.0, $0.1, take: true, settled: true, now: Self.start, holdingUnknown: true)
        }
        #expect(outcomes == [.noted, .noted, .unknown])
        #expect(!tracker.knows(unknown, Self.version(3)), "held back, not queued")
        let ready = tracker.scannedUnknown(unknown, Self.version(3), settled: true, now: Self.start)
        tracker.endScan(complete: true)
        #expect(ready)
        #expect(tracker.handledCount == 1 && tracker.pendingCount == 2)
    }
}
