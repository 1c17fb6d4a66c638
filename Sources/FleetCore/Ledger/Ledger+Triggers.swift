/// One request `trigger` sent, as `trigger_events` records it.
struct TriggerEvent: Sendable, Equatable {
    var sessionID: Int64
    /// The endpoint without any `user:password@`.
    var url: String
    /// 1 for the first request of a delivery.
    var attempt: Int
    /// Nil when no HTTP response arrived.
    var httpStatus: Int?
    var latencyMs: Int
    var succeeded: Bool
    /// Why no response arrived (network errors); nil when one did.
    var errorMessage: String?
    /// The start of the response body as text (at most 1 KiB).
    var responseExcerpt: String?
}

/// A key the session uploaded, with the row id that orders the pages.
struct UploadedKey: Sendable, Equatable {
    var id: Int64
    var bucket: String
    var key: String
}

extension Ledger {
    /// Records one trigger request.
    func recordTriggerEvent(_ event: TriggerEvent) throws {
        try connection.execute(
            """
            INSERT INTO trigger_events (session_id, url, attempt, http_status, latency_ms, succeeded, error_message,
                                        response_excerpt)
            VALUES (\(event.sessionID), \(event.url), \(event.attempt), \(event.httpStatus), \(event.latencyMs),
                    \(event.succeeded), \(event.errorMessage), \(event.responseExcerpt))
            """
        )
    }

    /// Up to `limit` keys the session uploaded, recorded after row `afterID`, in id order.
    ///
    /// Keyset pagination over the `(session_id, status, id)` index: each page starts where the last ended, so
    /// paging through 300k keys reads each row once and keeps one page in memory.
    func uploadedKeys(sessionID: Int64, after afterID: Int64, limit: Int) throws -> [UploadedKey] {
        let rows = try connection.execute(
            """
            SELECT id, bucket, s3_key FROM file_uploads
            WHERE session_id = \(sessionID) AND status = 'uploaded' AND id > \(afterID)
            ORDER BY id LIMIT \(limit)
            """
        )
        return (0..<rows.rowCount).map { row in
            UploadedKey(id: rows.int64(row, 0) ?? 0, bucket: rows.string(row, 1) ?? "", key: rows.string(row, 2) ?? "")
        }
    }
}
