import FleetAWS
import FleetSystem
import FleetTestSupport
import Foundation
import Synchronization
import Testing

@testable import FleetCore

/// A device whose clock is off by more than S3's 15 minutes, against a server that refuses such requests with
/// `RequestTimeTooSkewed`.
struct S3ClockSkewTests {
    /// A client whose clock is `skew` seconds off (negative: behind), sharing one signing clock.
    private func context(skew: TimeInterval, s3: TestS3) throws -> S3Context {
        var context = try S3Context(config: s3.config(), environment: s3.environment, homeDirectory: "/nonexistent")
        context.clock = SigningClock(base: { Date().addingTimeInterval(skew) })
        return context
    }

    /// The first request is refused, the client learns the server's time from the refusal's `Date` header,
    /// says how far off the clock is, and the same upload goes through with the bytes intact.
    @Test(arguments: [-20.0 * 60, 45.0 * 60])
    func uploadSucceedsOnceTheServerTimeIsAdopted(skew: TimeInterval) throws {
        let s3 = try TestS3()
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let path = try tree.file("a.bin", size: 5_000)
        let context = try context(skew: skew, s3: s3)
        let log = LogCapture()
        let client = try context.client(logger: log.logger)

        _ = try client.uploadFile(LocalFile(path: path.path), bucket: s3.bucket, key: s3.prefix + "a.bin")

        #expect(try client.getObject(bucket: s3.bucket, key: s3.prefix + "a.bin") == Array(Data(contentsOf: path)))
        // The offset undoes the skew, to within the Date header's whole seconds and the request's duration.
        #expect(abs(context.clock.offsetSeconds + skew) < 3)
        let minutes = Int((abs(skew) / 60).rounded())
        let direction = skew < 0 ? "behind" : "ahead of"
        let warnings = log.count(level: .warning) {
            $0.contains("the clock is \(minutes) minutes off (\(direction) the server's)")
        }
        #expect(warnings == 1)
    }

    /// HEAD answers carry no body, so no error code: a 403 to a request signed more than 15 minutes from the
    /// answer's `Date` is read as the clock refusal, and the HEAD goes through once the offset is learned.
    @Test func headRequestsLearnTheOffsetToo() throws {
        let s3 = try TestS3()
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let path = try tree.file("a.bin", size: 300)
        let plain = try s3.client()
        _ = try plain.uploadFile(LocalFile(path: path.path), bucket: s3.bucket, key: s3.prefix + "a.bin")
        let log = LogCapture()

        let objectClient = try context(skew: 25 * 60, s3: s3).client(logger: log.logger)
        let info = try objectClient.headObject(bucket: s3.bucket, key: s3.prefix + "a.bin")
        let bucketContext = try context(skew: -25 * 60, s3: s3)
        try bucketContext.client(logger: log.logger).headBucket(s3.bucket)

        #expect(info?.size == 300)
        #expect(abs(bucketContext.clock.offsetSeconds - 25 * 60) < 3)
        #expect(log.count(level: .warning) { $0.contains("the clock is 25 minutes off") } == 2)
    }

    /// Every client of the context (one per worker thread) signs with the learned offset: only the first
    /// request of the first client is refused.
    @Test func otherWorkersSignWithTheLearnedOffsetAtOnce() throws {
        let s3 = try TestS3()
        let context = try context(skew: -30 * 60, s3: s3)
        let log = LogCapture()
        let first = try context.client(logger: log.logger)
        _ = try first.listObjects(bucket: s3.bucket, prefix: s3.prefix)

        for _ in 0..<3 {
            let worker = try context.client(logger: log.logger)
            _ = try worker.listObjects(bucket: s3.bucket, prefix: s3.prefix)
        }

        #expect(log.count(level: .warning) { $0.contains("the clock is 30 minutes off") } == 1)
    }

    /// The local clock keeps jumping after the correction: the second refusal is not retried again, and the
    /// error names its class and how far off the clock is.
    @Test func aClockThatKeepsJumpingFailsWithClockSkewed() throws {
        let s3 = try TestS3()
        var context = try S3Context(config: s3.config(), environment: s3.environment, homeDirectory: "/nonexistent")
        let calls = Counter()
        // Every reading is another 20 minutes further behind.
        context.clock = SigningClock(base: { Date().addingTimeInterval(-1_200 * Double(calls.next())) })
        let client = try context.client(logger: quietLogger)

        let error = try #require(throws: S3Error.self) { try client.listObjects(bucket: s3.bucket) }

        #expect(error.kind == .clockSkewed)
        #expect(error.kind.rawValue == "clock_skewed")
        #expect(error.httpStatus == 403)
        #expect(error.message.hasPrefix("the clock is 80 minutes off (behind the server's)"))
    }
}

/// A thread-safe counter for a clock that moves on every reading.
private final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> Int {
        value.withLock {
            $0 += 1
            return $0
        }
    }
}
