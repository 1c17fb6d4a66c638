import Foundation
import Testing

@testable import FleetAWS

struct SigningClockTests {
    @Test func signsWithTheLocalTimeUntilAnOffsetIsLearned() {
        let local = Date(timeIntervalSince1970: 1_796_000_000)
        let clock = SigningClock(base: { local })
        #expect(clock.now == local)
        #expect(clock.offsetSeconds == 0)
    }

    /// After a refusal the server's time is adopted: the offset is the server's time minus the local time at
    /// the answer, and every later signing time carries it.
    @Test func adoptedServerTimeShiftsEverySigningTime() {
        let local = Date(timeIntervalSince1970: 1_796_000_000)
        let clock = SigningClock(base: { local })
        let learned = clock.adopt(serverTime: local.addingTimeInterval(1_200), at: local)
        #expect(learned == 1_200)
        #expect(clock.offsetSeconds == 1_200)
        #expect(clock.now == local.addingTimeInterval(1_200))
        #expect(clock.localNow == local)
    }

    /// Worker threads share one clock: what one learns, all sign with.
    @Test func anOffsetLearnedOnOneThreadIsSeenOnAll() async {
        let clock = SigningClock(base: { Date(timeIntervalSince1970: 0) })
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask {
                    clock.adopt(serverTime: Date(timeIntervalSince1970: 600), at: Date(timeIntervalSince1970: 0))
                    _ = clock.now + Double(index)
                }
            }
        }
        #expect(clock.now == Date(timeIntervalSince1970: 600))
    }

    @Test(arguments: [
        (1_200.0, "the clock is 20 minutes off (behind the server's)"),
        (-3_600.0, "the clock is 60 minutes off (ahead of the server's)"),
        (61.0, "the clock is 1 minute off (behind the server's)"),
    ])
    func describesTheSkewInMinutes(offset: Double, expected: String) {
        #expect(SigningClock.describe(offsetSeconds: offset) == expected)
    }

    /// A bodiless 403 is the clock refusal only when the request was signed more than 15 minutes from the
    /// server's `Date`; otherwise it stays a denial.
    @Test func bodilessRefusalIsReadFromTheServersDate() {
        let signed = Date(timeIntervalSince1970: 1_796_000_000)
        func code(_ status: Int, serverOffset: TimeInterval?, isObject: Bool = true) -> String? {
            S3Client.codeWithoutBody(
                status: status,
                isObject: isObject,
                signedAt: signed,
                serverTime: serverOffset.map { signed.addingTimeInterval($0) }
            )
        }
        #expect(code(403, serverOffset: 16 * 60) == "RequestTimeTooSkewed")
        #expect(code(403, serverOffset: -16 * 60) == "RequestTimeTooSkewed")
        #expect(code(403, serverOffset: 14 * 60) == nil)
        #expect(code(403, serverOffset: nil) == nil)
        #expect(code(404, serverOffset: 16 * 60) == "NoSuchKey")
        #expect(code(404, serverOffset: 0, isObject: false) == "NoSuchBucket")
        #expect(code(400, serverOffset: 16 * 60) == nil)
    }
}
