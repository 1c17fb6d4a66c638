/// How announcing one session ended; `trigger --json` prints it, `master once` reports it.
package struct TriggerResult: Codable, Sendable, Equatable {
    package enum Outcome: String, Codable, Sendable {
        /// The endpoint answered 2xx.
        case delivered
        /// Not sent: the session is still running, or `only_if: complete` and it did not complete cleanly.
        case refused
        /// Sent, but no attempt succeeded: a 4xx or other final answer, or out of attempts.
        case failed
    }

    package var sessionID: Int64
    /// The endpoint without `user:password@`.
    package var url: String
    package var outcome: Outcome
    /// Which delivery of the session this was (see `TriggerEvent.delivery`); nil when refused.
    package var delivery: Int?
    /// Requests sent (0 when refused).
    package var attempts: Int
    /// The last response's status; nil when none arrived.
    package var httpStatus: Int?
    /// How long the last request took, in milliseconds.
    package var latencyMs: Int?
    /// The size of the JSON document sent.
    package var payloadBytes: Int64?
    /// How many keys the document listed (`--with-keys`), else nil.
    package var keys: Int?
    /// Why it was refused or failed; nil when delivered.
    package var reason: String?

    package var delivered: Bool { outcome == .delivered }

    private enum CodingKeys: String, CodingKey {
        case sessionID = "session_id"
        case url, outcome, delivery, attempts
        case httpStatus = "http_status"
        case latencyMs = "latency_ms"
        case payloadBytes = "payload_bytes"
        case keys
        case reason
    }

    /// One line for people: `session 42: delivered to https://… (HTTP 200, attempt 1 of 5, 35 ms)`.
    package var summary: String {
        switch outcome {
        case .delivered:
            let status = httpStatus.map { "HTTP \($0), " } ?? ""
            let latency = latencyMs.map { ", \($0) ms" } ?? ""
            return "session \(sessionID): delivered to \(url) (\(status)attempt \(attempts)\(latency))"
        case .refused:
            return "session \(sessionID): not sent: \(reason ?? "refused")"
        case .failed:
            return "session \(sessionID): not delivered to \(url): \(reason ?? "failed")"
        }
    }
}
