import FleetLedger
import FleetSystem
import Foundation
import Logging

/// Posts a session's summary to an endpoint, with retries, and records every request in `trigger_events`.
///
/// One delivery runs on the calling thread with a libcurl handle of its own.
package struct TriggerDelivery {
    package var options: TriggerOptions
    /// Where `${VARIABLE}` in header values is looked up.
    package var environment: [String: String]
    package var logger: Logger

    package init(
        options: TriggerOptions,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        logger: Logger
    ) {
        self.options = options
        self.environment = environment
        self.logger = logger
    }

    /// Deliveries a session gets at most: after this many failed ones no later run tries again.
    package static let maximumDeliveries = 5
    /// How long after a session's first trigger request later runs keep trying to deliver it: 72 hours.
    package static let maximumAgeSeconds = 72 * 3600
    /// Sessions one run delivers again at most, after its own.
    package static let redeliveriesPerRun = 20

    /// What one attempt's outcome means for the delivery.
    enum Verdict: Equatable {
        case delivered
        /// Worth another attempt: a network error, 5xx or 429.
        case retry
        /// No attempt will do better: any other answer, or a TLS or request error.
        case final
    }

    static func verdict(status: Int) -> Verdict {
        switch status {
        case 200..<300: .delivered
        case 429, 500..<600: .retry
        default: .final
        }
    }

    static func verdict(error: HTTPError) -> Verdict { error.isTransient ? .retry : .final }

    /// The wait a `Retry-After` header asks for, in seconds: its delay-seconds, or the time until its HTTP
    /// date (0 for a date already past); nil when there is no such header or it is neither.
    static func retryAfter(_ value: String?, now: Timestamp) -> Double? {
        guard let text = value?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        if text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) { return Double(text) }
        guard let date = HTTPDate.parse(text, now: now) else { return nil }
        return max(0, Double(date.microseconds - now.microseconds) / 1_000_000)
    }

    /// The wait before the next attempt: what the endpoint asked for with `Retry-After`, bounded by the
    /// backoff's cap so a server cannot stall the run; else the jittered backoff.
    static func wait(
        retryAfter: Double?,
        backoff: Backoff,
        afterAttempt attempt: Int,
        using generator: inout some RandomNumberGenerator
    ) -> Double {
        if let retryAfter { return min(retryAfter, backoff.capSeconds) }
        return backoff.delay(afterAttempt: attempt, using: &generator)
    }

    /// Why `session` is not announced, or nil when it is.
    ///
    /// A session still running is never announced; with `only_if: complete`, neither is one with failed or
    /// unfinished files or one that did not end `completed`.
    static func refusal(of session: SessionRecord, onlyIf: TriggerOptions.Condition) -> String? {
        if session.status == .running {
            return "the session is still running (last heartbeat \(session.heartbeatAt.rfc3339))"
        }
        guard onlyIf == .complete else { return nil }
        let totals = session.totals
        func files(_ count: Int) -> String { count == 1 ? "1 file" : "\(count) files" }
        if totals.failedFiles > 0 { return "\(files(totals.failedFiles)) failed (only-if complete)" }
        if totals.unfinishedFiles > 0 {
            return "\(files(totals.unfinishedFiles)) not finished (only-if complete)"
        }
        if session.status != .completed { return "the session ended \(session.status.rawValue) (only-if complete)" }
        return nil
    }

    /// Announces session `sessionID`.
    ///
    /// A refused session (see `TriggerOptions.Condition`) gets no request and no event. Otherwise the payload
    /// (`TriggerPayload`) is written to an unlinked temporary file and POSTed; network errors, 5xx and 429 are
    /// retried up to `options.maxAttempts`, resending the same bytes, after the wait the answer's
    /// `Retry-After` asks for (at most the backoff's cap) or else the jittered backoff; any other answer is
    /// final. Every request of this delivery carries `Idempotency-Key: <session>-<delivery>` (unless the
    /// configuration names that header itself), the delivery being the session's next number. Each request
    /// becomes one `trigger_events` row.
    ///
    /// - Returns: delivered, refused or failed, with the requests made.
    /// - Throws: `TriggerError` for an unknown session or a payload that cannot be written, `ConfigError` for a
    ///   header whose environment variable is not set, `LedgerError`, `HTTPError` if libcurl cannot start.
    package func deliver(sessionID: Int64, ledger: Ledger) throws -> TriggerResult {
        guard let session = try ledger.session(sessionID) else {
            throw TriggerError(.unknownSession, "no session \(sessionID) in the ledger at \(ledger.location)")
        }
        var headers = try options.requestHeaders(environment: environment)
        var result = TriggerResult(sessionID: sessionID, url: options.redactedURL, outcome: .refused, attempts: 0)
        var logger = logger
        logger[metadataKey: "session.id"] = "\(sessionID)"
        logger[metadataKey: "trigger.url"] = "\(result.url)"
        if let reason = TriggerDelivery.refusal(of: session, onlyIf: options.onlyIf) {
            logger.info("trigger not sent: \(reason)")
            result.reason = reason
            return result
        }

        let delivery = try ledger.nextTriggerDelivery(sessionID: sessionID)
        result.delivery = delivery
        logger[metadataKey: "trigger.delivery"] = "\(delivery)"
        if !headers.contains(where: { $0.name.lowercased() == "idempotency-key" }) {
            headers.append(("Idempotency-Key", "\(sessionID)-\(delivery)"))
        }

        let file = try SpoolFile()
        let pageSize = options.keyPageSize
        let keyPages: ((Int64) throws -> [UploadedKey])? =
            options.withKeys
            ? { afterID in try ledger.uploadedKeys(sessionID: sessionID, after: afterID, limit: pageSize) } : nil
        let keyCount = try TriggerPayload.write(session, keyPages: keyPages, into: file)
        let request = HTTPRequest(
            method: "POST",
            url: options.url,
            headers: headers,
            body: .file(try file.finish()),
            timeouts: HTTPTimeouts(
                connectSeconds: min(10, options.timeoutSeconds),
                stallBytesPerSecond: 0,
                stallSeconds: 0,
                totalSeconds: options.timeoutSeconds
            )
        )
        result.payloadBytes = file.length
        result.keys = options.withKeys ? keyCount : nil
        logger.debug(
            "trigger payload written",
            metadata: ["trigger.bytes": "\(file.length)", "trigger.keys": "\(keyCount)"]
        )

        let curl = try CurlEasy()
        curl.maximumResponseBytes = 1 << 20
        var generator = SystemRandomNumberGenerator()
        let attempts = max(1, options.maxAttempts)
        for number in 1...attempts {
            let (event, verdict, problem, retryAfter) = attempt(
                request,
                number: number,
                delivery: delivery,
                of: session,
                with: curl
            )
            try ledger.recordTriggerEvent(event)
            result.attempts = number
            result.httpStatus = event.httpStatus
            result.latencyMs = event.latencyMs
            switch verdict {
            case .delivered:
                result.outcome = .delivered
                logger.info("trigger delivered", metadata: ["http.status": "\(event.httpStatus ?? 0)"])
                return result
            case .final:
                result.outcome = .failed
                result.reason = problem
                logger.info("trigger not delivered: \(problem); \(TriggerDelivery.nextStep(after: delivery))")
                return result
            case .retry where number < attempts:
                let wait = TriggerDelivery.wait(
                    retryAfter: retryAfter,
                    backoff: options.backoff,
                    afterAttempt: number,
                    using: &generator
                )
                let seconds = String(format: "%.1f", wait)
                let asked = retryAfter == nil ? "" : " (Retry-After)"
                logger.notice(
                    "trigger attempt \(number) of \(attempts) failed: \(problem); retrying in \(seconds) s\(asked)"
                )
                Thread.sleep(forTimeInterval: wait)
            case .retry:
                result.outcome = .failed
                result.reason = "no success in \(number) attempts; last: \(problem)"
                logger.info(
                    "trigger not delivered: \(result.reason ?? problem); \(TriggerDelivery.nextStep(after: delivery))"
                )
            }
        }
        return result
    }

    /// What happens to a session whose delivery number `delivery` failed.
    static func nextStep(after delivery: Int) -> String {
        delivery >= maximumDeliveries
            ? "giving up after \(delivery) deliveries"
            : "the next master once or agent run tries again (delivery \(delivery) of at most \(maximumDeliveries))"
    }

    /// Announces again the sessions of `sessionID`'s project whose earlier deliveries all failed and that are
    /// not given up (fewer than `maximumDeliveries` deliveries, the first request less than
    /// `maximumAgeSeconds` ago), oldest first, at most `redeliveriesPerRun` of them.
    ///
    /// Stops at the first that fails again: the endpoint is still unwell, and the next run tries again.
    ///
    /// - Parameter each: Called with each result as it ends.
    /// - Returns: The results, in order.
    package func deliverUndelivered(
        besides sessionID: Int64,
        ledger: Ledger,
        each: (TriggerResult) -> Void = { _ in }
    ) throws -> [TriggerResult] {
        let pending = try ledger.undeliveredTriggers(
            projectOf: sessionID,
            url: options.redactedURL,
            maximumDeliveries: TriggerDelivery.maximumDeliveries,
            maximumAgeSeconds: TriggerDelivery.maximumAgeSeconds,
            limit: TriggerDelivery.redeliveriesPerRun
        )
        var results: [TriggerResult] = []
        for earlier in pending {
            logger.info("announcing session \(earlier) again: its earlier deliveries failed")
            let result = try deliver(sessionID: earlier, ledger: ledger)
            each(result)
            results.append(result)
            if result.outcome == .failed { break }
        }
        return results
    }

    /// Sends the request once; returns its event, what it means, a one-line account of a failure, and the
    /// wait a retried answer's `Retry-After` asks for.
    private func attempt(
        _ request: HTTPRequest,
        number: Int,
        delivery: Int,
        of session: SessionRecord,
        with curl: CurlEasy
    ) -> (TriggerEvent, Verdict, String, Double?) {
        let started = DispatchTime.now().uptimeNanoseconds
        var event = TriggerEvent(
            sessionID: session.id,
            url: options.redactedURL,
            delivery: delivery,
            attempt: number,
            latencyMs: 0,
            succeeded: false
        )
        let verdict: Verdict
        let problem: String
        var retryAfter: Double? = nil
        do {
            let response = try curl.perform(request)
            verdict = TriggerDelivery.verdict(status: response.status)
            if verdict == .retry {
                retryAfter = TriggerDelivery.retryAfter(response.header("retry-after"), now: .now())
            }
            event.httpStatus = response.status
            event.responseExcerpt = TriggerDelivery.excerpt(response.body)
            let firstLine = event.responseExcerpt?.split(whereSeparator: \.isNewline).first.map {
                ": " + $0.prefix(160)
            }
            problem = "HTTP \(response.status)\(verdict == .final ? ", not retried" : "")\(firstLine ?? "")"
        } catch {
            verdict = TriggerDelivery.verdict(error: error)
            event.errorMessage = error.description
            problem = error.description
        }
        event.latencyMs = Int((DispatchTime.now().uptimeNanoseconds - started) / 1_000_000)
        event.succeeded = verdict == .delivered
        return (event, verdict, problem, retryAfter)
    }

    /// The first KiB of a response body as text (NUL removed: PostgreSQL text cannot hold it); nil if empty.
    static func excerpt(_ body: [UInt8]) -> String? {
        guard !body.isEmpty else { return nil }
        return String(decoding: body.prefix(1024).filter { $0 != 0 }, as: UTF8.self)
    }
}
