import FleetSystem
import Testing

@testable import FleetCore
@testable import FleetLedger

struct TriggerDeliveryTests {
    @Test(arguments: [
        (200, TriggerDelivery.Verdict.delivered), (201, .delivered), (204, .delivered), (500, .retry), (502, .retry),
        (503, .retry), (504, .retry), (429, .retry), (400, .final), (401, .final), (403, .final), (404, .final),
        (409, .final), (422, .final), (301, .final), (302, .final), (100, .final),
    ])
    func onlyServerErrorsAndThrottlingAreRetried(status: Int, verdict: TriggerDelivery.Verdict) {
        #expect(TriggerDelivery.verdict(status: status) == verdict)
    }

    @Test(arguments: [
        (HTTPError.Kind.dns, TriggerDelivery.Verdict.retry), (.connect, .retry), (.timeout, .retry),
        (.stalled, .retry), (.network, .retry), (.tls, .final), (.invalidRequest, .final), (.bodyRead, .final),
    ])
    func networkErrorsAreRetriedButNotBrokenRequests(kind: HTTPError.Kind, verdict: TriggerDelivery.Verdict) {
        let error = HTTPError(kind: kind, message: "test", curlCode: 7)
        #expect(TriggerDelivery.verdict(error: error) == verdict)
    }

    private func session(
        _ status: SessionStatus,
        failed: Int = 0,
        unfinished: Int = 0
    ) -> SessionRecord {
        var totals = SessionTotals()
        totals.files = 10
        totals.failedFiles = failed
        totals.unfinishedFiles = unfinished
        return SessionRecord(
            row: SessionRow(
                id: 7,
                project: "p",
                projectID: 1,
                device: nil,
                deviceID: nil,
                configID: nil,
                kind: "upload",
                status: status,
                hostname: "h",
                pid: 1,
                localDirectory: "/d",
                bucket: "b",
                prefix: "",
                startedAt: Timestamp(microseconds: 0),
                heartbeatAt: Timestamp(microseconds: 1_000_000),
                finishedAt: status == .running ? nil : Timestamp(microseconds: 1_000_000),
                errorMessage: nil
            ),
            totals: totals
        )
    }

    @Test func runningSessionIsNeverAnnounced() {
        let reason = TriggerDelivery.refusal(of: session(.running), onlyIf: .always)
        #expect(reason?.contains("still running") == true)
    }

    @Test func alwaysAnnouncesAFinishedSessionWithFailures() {
        #expect(TriggerDelivery.refusal(of: session(.completedWithErrors, failed: 3), onlyIf: .always) == nil)
        #expect(TriggerDelivery.refusal(of: session(.interrupted, unfinished: 2), onlyIf: .always) == nil)
    }

    @Test(arguments: [
        (SessionStatus.completedWithErrors, 3, 0, "3 files failed"),
        (.interrupted, 0, 2, "2 files not finished"),
        (.failed, 0, 0, "ended failed"),
    ])
    func completeRefusesSessionsThatDidNotCompleteCleanly(
        status: SessionStatus,
        failed: Int,
        unfinished: Int,
        expected: String
    ) {
        let reason = TriggerDelivery.refusal(
            of: session(status, failed: failed, unfinished: unfinished),
            onlyIf: .complete
        )
        #expect(reason?.contains(expected) == true, "\(reason ?? "nil")")
    }

    @Test func completeAnnouncesACompletedSession() {
        #expect(TriggerDelivery.refusal(of: session(.completed), onlyIf: .complete) == nil)
    }

    @Test func excerptIsTheFirstKibibyteAsTextWithoutNUL() {
        #expect(TriggerDelivery.excerpt([]) == nil)
        #expect(TriggerDelivery.excerpt(Array("ok\u{0}!".utf8)) == "ok!")
        #expect(TriggerDelivery.excerpt([UInt8](repeating: UInt8(ascii: "x"), count: 5000))?.count == 1024)
    }

    // MARK: - Retry-After

    @Test(arguments: [
        ("2", 2.0), (" 120 ", 120.0), ("0", 0.0),
        // An HTTP date, 90 seconds after `now`, in its three forms.
        ("Sun, 06 Dec 2026 15:01:30 GMT", 90.0), ("Sunday, 06-Dec-26 15:01:30 GMT", 90.0),
        ("Sun Dec  6 15:01:30 2026", 90.0),
        // A date already past asks for no wait.
        ("Sun, 06 Dec 2026 14:00:00 GMT", 0.0),
    ])
    func retryAfterReadsSecondsOrAnHTTPDate(value: String, seconds: Double) {
        let now = Timestamp(seconds: 1_796_569_200)  // 2026-12-06 15:00:00 UTC
        #expect(TriggerDelivery.retryAfter(value, now: now) == seconds)
    }

    @Test(arguments: [nil, "", "soon", "-5", "1.5", "Sun, 06 Dec 2026 15:01:30"])
    func unreadableRetryAfterIsIgnored(value: String?) {
        #expect(TriggerDelivery.retryAfter(value, now: Timestamp(seconds: 1_796_569_200)) == nil)
    }

    /// The endpoint's wish is honoured up to the configured cap; without one, the jittered backoff applies.
    @Test func retryAfterIsBoundedByTheBackoffCap() {
        let backoff = Backoff(baseSeconds: 1, capSeconds: 30)
        var generator = SystemRandomNumberGenerator()
        #expect(TriggerDelivery.wait(retryAfter: 7, backoff: backoff, afterAttempt: 1, using: &generator) == 7)
        #expect(TriggerDelivery.wait(retryAfter: 3_600, backoff: backoff, afterAttempt: 1, using: &generator) == 30)
        #expect(TriggerDelivery.wait(retryAfter: 0, backoff: backoff, afterAttempt: 3, using: &generator) == 0)
        for attempt in 1...6 {
            let wait = TriggerDelivery.wait(retryAfter: nil, backoff: backoff, afterAttempt: attempt, using: &generator)
            #expect(wait >= 0 && wait <= backoff.ceiling(afterAttempt: attempt))
        }
    }

    @Test func aFailedDeliveryIsTriedAgainUntilTheLastOne() {
        #expect(
            TriggerDelivery.nextStep(after: 1)
                == "the next master once or agent run tries again (delivery 1 of at most 5)"
        )
        #expect(TriggerDelivery.nextStep(after: TriggerDelivery.maximumDeliveries) == "giving up after 5 deliveries")
    }
}
