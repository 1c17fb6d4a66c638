import FleetSystem

/// One request `trigger` sent, as `trigger_events` records it; `master status --session` lists them without
/// the URL, which may carry a token.
package struct TriggerEvent: Sendable, Equatable {
    package var sessionID: Int64
    /// The endpoint without any `user:password@`.
    package var url: String
    /// Which announcement of the session the request belongs to: 1 for the first, one more for each later
    /// run that tried again after a failed one. Its requests share the Idempotency-Key `<session>-<delivery>`.
    package var delivery: Int
    /// 1 for the first request of a delivery.
    package var attempt: Int
    /// Nil when no HTTP response arrived.
    package var httpStatus: Int?
    /// Nil only for a row written without one: `trigger` always measures it.
    package var latencyMs: Int?
    package var succeeded: Bool
    /// Why no response arrived (network errors); nil when one did.
    package var errorMessage: String?
    /// The start of the response body as text (at most 1 KiB).
    package var responseExcerpt: String?
    /// When the ledger recorded it (`created_at`); nil until it is recorded.
    package var at: Timestamp?

    package init(
        sessionID: Int64,
        url: String,
        delivery: Int = 1,
        attempt: Int,
        httpStatus: Int? = nil,
        latencyMs: Int?,
        succeeded: Bool,
        errorMessage: String? = nil,
        responseExcerpt: String? = nil,
        at: Timestamp? = nil
    ) {
        self.sessionID = sessionID
        self.url = url
        self.delivery = delivery
        self.attempt = attempt
        self.httpStatus = httpStatus
        self.latencyMs = latencyMs
        self.succeeded = succeeded
        self.errorMessage = errorMessage
        self.responseExcerpt = responseExcerpt
        self.at = at
    }
}

extension TriggerEvent: Encodable {
    /// The URL, the session and the response excerpt are left out: the URL may carry a token.
    private enum CodingKeys: String, CodingKey {
        case delivery, attempt, at
        case httpStatus = "http_status"
        case latencyMs = "latency_ms"
        case succeeded
        case errorMessage = "error_message"
    }

    /// Snake-case keys; the time in RFC 3339 UTC; absent values as `null`.
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(delivery, forKey: .delivery)
        try container.encode(attempt, forKey: .attempt)
        try container.encode(at?.rfc3339, forKey: .at)
        try container.encode(httpStatus, forKey: .httpStatus)
        try container.encode(latencyMs, forKey: .latencyMs)
        try container.encode(succeeded, forKey: .succeeded)
        try container.encode(errorMessage, forKey: .errorMessage)
    }
}

/// A key the session uploaded, with the row id that orders the pages.
package struct UploadedKey: Sendable, Equatable {
    package var id: Int64
    package var bucket: String
    package var key: String
}

extension Ledger {
    /// Records one trigger request.
    package func recordTriggerEvent(_ event: TriggerEvent) throws {
        try connection.execute(
            """
            INSERT INTO trigger_events (session_id, url, delivery, attempt, http_status, latency_ms, succeeded,
                                        error_message, response_excerpt)
            VALUES (\(event.sessionID), \(event.url), \(event.delivery), \(event.attempt), \(event.httpStatus),
                    \(event.latencyMs), \(event.succeeded), \(event.errorMessage), \(event.responseExcerpt))
            """
        )
    }

    /// The number of the session's next delivery: one more than the last one recorded, 1 for the first.
    ///
    /// A delivery whose process died before its first request was recorded is numbered again by the next
    /// one, so a request that may have reached the endpoint is repeated under the same Idempotency-Key.
    package func nextTriggerDelivery(sessionID: Int64) throws -> Int {
        let rows = try connection.execute(
            "SELECT COALESCE(max(delivery), 0) + 1 FROM trigger_events WHERE session_id = \(sessionID)"
        )
        return try rows.decode(Int.self, 0, 0, in: "trigger_events")
    }

    /// Sessions of `sessionID`'s project and device whose announcement to `url` failed and is still worth
    /// another delivery, oldest first: every request recorded for them failed, fewer than `maximumDeliveries`
    /// deliveries were made, and the first request is younger than `maximumAgeSeconds`. `sessionID` itself is
    /// left out. Only the device's own sessions: two devices of a project never announce one session twice.
    ///
    /// A session past either limit has been given up: its requests stay recorded, and no run tries again.
    package func undeliveredTriggers(
        projectOf sessionID: Int64,
        url: String,
        maximumDeliveries: Int,
        maximumAgeSeconds: Int,
        limit: Int
    ) throws -> [Int64] {
        let rows = try connection.execute(
            """
            SELECT e.session_id FROM trigger_events e JOIN sync_sessions s ON s.id = e.session_id
            JOIN sync_sessions me ON me.id = \(sessionID)
            WHERE s.project_id = me.project_id AND s.device_id IS NOT DISTINCT FROM me.device_id
              AND e.session_id <> \(sessionID) AND e.url = \(url)
              AND s.started_at > now() - \(maximumAgeSeconds) * interval '1 second' - interval '7 days'
            GROUP BY e.session_id
            HAVING NOT bool_or(e.succeeded) AND max(e.delivery) < \(maximumDeliveries)
               AND min(e.created_at) > now() - \(maximumAgeSeconds) * interval '1 second'
            ORDER BY e.session_id LIMIT \(limit)
            """
        )
        return try (0..<rows.rowCount).map { row in try rows.decode(Int64.self, row, 0, in: "trigger_events") }
    }

    /// Up to `limit` keys the session uploaded, recorded after row `afterID`, in id order.
    ///
    /// Keyset pagination over the `(session_id, status, id)` index: each page starts where the last ended, so
    /// paging through 300k keys reads each row once and keeps one page in memory.
    package func uploadedKeys(sessionID: Int64, after afterID: Int64, limit: Int) throws -> [UploadedKey] {
        let rows = try connection.execute(
            """
            SELECT id, bucket, s3_key FROM file_uploads
            WHERE session_id = \(sessionID) AND status = 'uploaded' AND id > \(afterID)
            ORDER BY id LIMIT \(limit)
            """
        )
        return try (0..<rows.rowCount).map { row in
            UploadedKey(
                id: try rows.decode(Int64.self, row, 0, in: "file_uploads"),
                bucket: try rows.decode(String.self, row, 1, in: "file_uploads"),
                key: try rows.decode(String.self, row, 2, in: "file_uploads")
            )
        }
    }
}
