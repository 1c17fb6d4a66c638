import FleetSystem
import Foundation
import Logging

/// A scanned file on its way into `file_uploads`.
package struct PlannedFile: Sendable {
    package var source: String
    /// Display form of the local path (invalid UTF-8 as `%XX`).
    package var localPath: String
    package var relativePath: String
    /// The exact local path, only when it is not valid UTF-8.
    package var pathBytes: [UInt8]?
    package var bucket: String
    package var key: String
    package var size: Int64
    package var mtime: Timestamp
    /// Set for a file that cannot be uploaded at all (no valid key, unreadable): recorded as a permanent failure.
    package var errorClass: String?
    package var errorMessage: String?
    /// How the file is to be sent: a codec (`zstd`) and its level, or nil for as it is.
    package var codec: (name: String, level: Int)?

    package init(
        source: String,
        localPath: String,
        relativePath: String,
        pathBytes: [UInt8]?,
        bucket: String,
        key: String,
        size: Int64,
        mtime: Timestamp,
        errorClass: String? = nil,
        errorMessage: String? = nil
    ) {
        self.source = source
        self.localPath = localPath
        self.relativePath = relativePath
        self.pathBytes = pathBytes
        self.bucket = bucket
        self.key = key
        self.size = size
        self.mtime = mtime
        self.errorClass = errorClass
        self.errorMessage = errorMessage
    }
}

/// A file claimed for upload.
package struct UploadJob: Sendable {
    package var id: Int64
    package var createdAt: Timestamp
    /// The bytes to open.
    package var path: [UInt8]
    package var displayPath: String
    package var bucket: String
    package var key: String
    package var size: Int64
    package var mtime: Timestamp
    /// How the file is sent (`codec`, `codec_level`), or nil for as it is.
    package var codec: (name: String, level: Int)?
    /// The row's status before the claim (`pending`, or `failed`/`permanent_failure` for a retry): what it goes
    /// back to when the run stops before trying it.
    package var claimedFrom = "pending"
}

/// How one claimed file ended, written back in batches.
package struct UploadOutcome: Sendable {
    package enum Status: String, Sendable {
        case uploaded
        case failed
        case permanentFailure = "permanent_failure"
        /// Not tried (the run stopped first): the row goes back to the status it was claimed from, error kept.
        case putBack = "put_back"
    }
    package var job: UploadJob
    package var status: Status
    package var attempts: Int
    package var etag: String?
    package var sha256: String?
    package var versionID: String?
    package var multipartUploadID: String?
    package var errorClass: String?
    package var errorMessage: String?
    package var httpStatus: Int?
    package var startedAt: Timestamp
    package var finishedAt: Timestamp
    /// The size and mtime the upload read (equal to the job's unless the file changed since the scan).
    package var size: Int64
    package var mtime: Timestamp
    /// The device and inode of the file the upload read, when it read one; deleting it later checks them.
    package var device: UInt64?
    package var inode: UInt64?
    /// The size of the object sent, when it differs from the file's (a compressed copy).
    package var sentSize: Int64?

    package init(job: UploadJob, status: Status, attempts: Int, startedAt: Timestamp, finishedAt: Timestamp = .now()) {
        self.job = job
        self.status = status
        self.attempts = attempts
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        size = job.size
        mtime = job.mtime
    }
}

extension Ledger {
    /// Records one batch of scanned files in one statement: `fleet_record_files`, a function so that the server plans
    /// it once per connection (a pooler in transaction mode keeps no prepared statement).
    ///
    /// A file whose project, bucket, key, size and mtime match the key's latest record goes in as `skipped` (an
    /// object imported without an mtime matches on key and size, `master import-state`); a second file mapping to a
    /// key already taken in this session, a file whose key another project stores (same bucket and endpoint; unless
    /// both projects share their prefix), and a file that came with an error, as `permanent_failure`; the rest as
    /// `pending`, ready to be claimed. One statement per batch, never a round trip per file; the function's comment
    /// in the migrations says how it asks only about the keys the ledger knows.
    ///
    /// The batch travels as one array per column, in PostgreSQL's binary array form (`PGArray`): nothing is staged in
    /// the server session (which a pooler in transaction mode does not keep), no table is created per batch (which
    /// would write catalog rows), and the server parses no text.
    ///
    /// A file whose bucket and key an earlier file of the batch has is marked before the batch is sent (the first
    /// one keeps the key, even when it failed): by bytes, as S3 and PostgreSQL compare keys.
    ///
    /// - Returns: how many of the batch were skipped.
    @discardableResult
    package func recordFiles(_ files: [PlannedFile], sessionID: Int64, projectID: Int64) throws -> Int {
        guard !files.isEmpty else { return 0 }
        func text(_ value: (PlannedFile) -> String?) -> PGArray { .text(files.map(value)) }
        // Swift's `==` takes a composed `é` and `e` + U+0301 for the same string, and they are two keys (and two files
        // on Linux).
        var seen = Set<[UInt8]>(minimumCapacity: files.count)
        let repeated = PGArray.boolean(
            files.map { !seen.insert(Array($0.bucket.utf8) + [0] + Array($0.key.utf8)).inserted }
        )
        let result = try connection.execute(
            """
            SELECT fleet_record_files(
                \(sessionID), \(projectID), \(text { $0.source })::text[], \(text { $0.localPath })::text[],
                \(text { $0.relativePath })::text[], \(PGArray.bytea(files.map(\.pathBytes)))::bytea[],
                \(text { $0.bucket })::text[], \(text { $0.key })::text[],
                \(PGArray.bigint(files.map(\.size)))::bigint[],
                \(PGArray.timestamptz(files.map(\.mtime)))::timestamptz[], \(text { $0.errorClass })::text[],
                \(text { $0.errorMessage })::text[], \(text { $0.codec?.name })::text[],
                \(PGArray.integer(files.map { $0.codec?.level }))::integer[], \(repeated)::boolean[]
            )
            """
        )
        return try result.decode(Int.self, 0, 0, in: "file_uploads")
    }

    /// Marks pending files whose key is already in the bucket with the same size as skipped (`bucket`). Such a row
    /// is a record of the key without a checksum (`object_records`): a checksum recorded for an earlier version of
    /// the key no longer says what the bucket holds, and nothing is deleted on the strength of it. A file sent
    /// compressed is never skipped this way: its object's size is the compressed one, which says nothing of the
    /// file (the ledger's own records skip it on the original's size and mtime instead).
    ///
    /// - Parameter listing: every object under the session's destination, as (bucket, key, size).
    /// - Returns: how many were skipped.
    package func skipFilesInBucket(sessionID: Int64, listing: [(String, String, Int64)]) throws -> Int {
        guard !listing.isEmpty else { return 0 }
        return try takingClaimTurn(sessionID) {
            try connection.executeScript(
                "CREATE TEMPORARY TABLE IF NOT EXISTS bucket_listing (bucket text, s3_key text, size_bytes bigint) ON COMMIT DROP"
            )
            try connection.copyIn("COPY bucket_listing (bucket, s3_key, size_bytes) FROM STDIN") { rows in
                for (bucket, key, size) in listing { try rows.row([.text(bucket), .text(key), .text(String(size))]) }
            }
            let updated = try connection.execute(
                """
                UPDATE file_uploads f SET status = 'skipped', skip_reason = 'bucket', finished_at = now(),
                    recorded_at = now(), updated_at = now()
                FROM bucket_listing b
                WHERE f.session_id = \(sessionID) AND f.status = 'pending' AND f.bucket = b.bucket
                  AND f.s3_key = b.s3_key AND f.size_bytes = b.size_bytes AND f.codec IS NULL
                  AND fleet_range_holder(f.session_id, f.id) IS NULL
                """
            )
            return updated.affectedRows
        }
    }

    /// The statuses `retry` takes files from: failed ones, files never tried (an interrupted run), and with
    /// `includePermanent` permanent failures too — except those no upload can fix (an invalid or duplicate key, a
    /// key another project stores).
    package static func retryableStatuses(includePermanent: Bool) -> [String] {
        includePermanent ? ["pending", "failed", "permanent_failure"] : ["pending", "failed"]
    }

    /// Error classes of permanent failures that a retry never takes: the key itself is wrong, or belongs to
    /// another project (sending it would overwrite that project's object).
    package static let unfixableClasses = ["invalid_key", "duplicate_key", "key_owned_by_other_project"]

    /// Claims up to `limit` of the session's files in `status` for `worker`, in id order after `afterID`, marking
    /// each row `uploading`; two processes never get the same file. A retry claims this way (an upload's claim is
    /// `claimRange`), and never takes a pending file a range holds.
    ///
    /// `fleet_claim_files` does it in one statement: claims of one session take turns on a transaction-scoped
    /// advisory lock (nothing outlives the statement, so a pooler in transaction mode is fine), and the rows are
    /// chosen after the lock is granted, so they are never rows another process has just claimed. No row lock is
    /// taken before the update, which would write a WAL record of its own for every file.
    ///
    /// The `(session_id, id)` index hands the session's rows over in id order from the cursor, with no sort of
    /// everything that is left. No index holds `status`, `claimed_at` or `finished_at`, so the claim and the
    /// outcome rewrite the row in place (a heap-only update: no index entries, only the changed bytes in the
    /// WAL).
    ///
    /// - Parameters:
    ///   - afterID: Claim only rows with a larger id: a run claims forward through the session, so a file that
    ///     fails again is not taken twice in one round, and the index scan starts where the last claim ended.
    ///   - maxAttempts: Leave files already attempted this often.
    package func claimFiles(
        sessionID: Int64,
        limit: Int,
        worker: String,
        status: String = "pending",
        afterID: Int64 = 0,
        maxAttempts: Int? = nil
    ) throws -> [UploadJob] {
        let rows = try connection.execute(
            """
            SELECT * FROM fleet_claim_files(\(sessionID), \(status), \(afterID), \(limit), \(worker),
                                            \(maxAttempts)::integer, \(PGTextArray(Ledger.unfixableClasses))::text[])
            """
        )
        return try Ledger.claimedJobs(rows, claimedFrom: nil)
    }

    /// Claims up to `limit` of the session's pending files for `worker`, in id order after `afterID`, without
    /// writing a file row: an upload's claim (`fleet_claim_range`). The files are held by a range of ids in
    /// `file_claims`, this worker's last one made longer when only finished files lie between it and them, so a
    /// run usually keeps one range per session; a pending file in a range is held until its outcome is written or
    /// the range is released. The claim starts at the first pending file no range holds, and stops at the
    /// session's next range and before any row `uploading`, and no other claim marks a row inside a range, so
    /// ranges never overlap and every pending file in one is its holder's.
    package func claimRange(sessionID: Int64, limit: Int, worker: String, afterID: Int64 = 0) throws -> [UploadJob] {
        let rows = try connection.execute(
            "SELECT * FROM fleet_claim_range(\(sessionID), \(afterID), \(limit), \(worker))"
        )
        return try Ledger.claimedJobs(rows, claimedFrom: "pending")
    }

    /// Jobs from rows of `id, created_at, local_path, path_bytes, bucket, s3_key, size_bytes, mtime`, then
    /// `claimed_from` (unless `claimedFrom` says it), `codec`, `codec_level`; in id order.
    private static func claimedJobs(_ rows: PGResult, claimedFrom: String?) throws -> [UploadJob] {
        let codecColumn = claimedFrom == nil ? 9 : 8
        var jobs: [UploadJob] = []
        jobs.reserveCapacity(rows.rowCount)
        for row in 0..<rows.rowCount {
            var job = try Ledger.uploadJob(rows, row)
            job.claimedFrom = try claimedFrom ?? rows.decode(String.self, row, 8, in: "file_uploads")
            if let codec = try rows.decodeIfPresent(String.self, row, codecColumn, in: "file_uploads") {
                job.codec = (codec, try rows.decode(Int.self, row, codecColumn + 1, in: "file_uploads"))
            }
            jobs.append(job)
        }
        return jobs.sorted { $0.id < $1.id }
    }

    /// A job from the first columns of a `file_uploads` row: `id, created_at, local_path, path_bytes, bucket,
    /// s3_key, size_bytes, mtime`. `path_bytes` is NULL when the path is valid UTF-8, and the display path is it.
    static func uploadJob(_ rows: PGResult, _ row: Int) throws -> UploadJob {
        let display = try rows.decode(String.self, row, 2, in: "file_uploads")
        let path = try rows.decodeIfPresent(String.self, row, 3, in: "file_uploads").map(Ledger.decodeByteaHex)
        return UploadJob(
            id: try rows.decode(Int64.self, row, 0, in: "file_uploads"),
            createdAt: try rows.decode(Timestamp.self, row, 1, in: "file_uploads"),
            path: path ?? Array(display.utf8),
            displayPath: display,
            bucket: try rows.decode(String.self, row, 4, in: "file_uploads"),
            key: try rows.decode(String.self, row, 5, in: "file_uploads"),
            size: try rows.decode(Int64.self, row, 6, in: "file_uploads"),
            mtime: try rows.decode(Timestamp.self, row, 7, in: "file_uploads")
        )
    }

    /// How many of the session's files a retry would take now (never one inside a claim range).
    package func countRetryable(sessionID: Int64, statuses: [String], maxAttempts: Int?) throws -> (Int, Int64) {
        let rows = try connection.execute(
            """
            SELECT count(*), coalesce(sum(size_bytes), 0) FROM file_uploads
            WHERE session_id = \(sessionID) AND status = ANY(\(PGTextArray(statuses))::text[])
              AND (status <> 'permanent_failure' OR error_class IS NULL
                   OR error_class <> ALL(\(PGTextArray(Ledger.unfixableClasses))::text[]))
              AND (\(maxAttempts)::integer IS NULL OR attempts < \(maxAttempts)::integer)
              AND fleet_range_holder(session_id, id) IS NULL
            """
        )
        return (
            try rows.decode(Int.self, 0, 0, in: "file_uploads"), try rows.decode(Int64.self, 0, 1, in: "file_uploads")
        )
    }

    /// Writes a batch of outcomes in one statement: the file rows and the session's heartbeat. An `uploaded` row is
    /// itself the ledger's record of the object (`object_records`); nothing else is written per file.
    ///
    /// `fleet_record_outcomes` writes them: a function, so that the server plans the statement once per connection.
    /// The batch travels as one array per column, in binary form (`PGArray`: the server parses no text, four
    /// timestamps a row among it), so nothing is staged in the server session and the statement is atomic on its
    /// own: no `BEGIN`/`COMMIT` round trips. The rows are found by primary key alone:
    /// with a `session_id` condition too, the planner reads the whole session through its index and hash-joins
    /// it with the batch, which made every batch cost as much as the session is large.
    package func recordOutcomes(_ outcomes: [UploadOutcome], sessionID: Int64) throws {
        guard !outcomes.isEmpty else { return }
        func text(_ value: (UploadOutcome) -> String?) -> PGArray { .text(outcomes.map(value)) }
        func bigint(_ value: (UploadOutcome) -> Int64?) -> PGArray { .bigint(outcomes.map(value)) }
        func timestamp(_ value: (UploadOutcome) -> Timestamp) -> PGArray { .timestamptz(outcomes.map(value)) }
        try connection.execute(
            """
            SELECT fleet_record_outcomes(
                \(sessionID), \(ClaimHolder.thisProcess), \(bigint { $0.job.id })::bigint[],
                \(timestamp { $0.job.createdAt })::timestamptz[], \(text { $0.status.rawValue })::text[],
                \(PGArray.integer(outcomes.map(\.attempts)))::integer[], \(text { $0.etag })::text[],
                \(text { $0.sha256 })::text[], \(text { $0.versionID })::text[],
                \(text { $0.multipartUploadID })::text[],
                \(text { $0.errorClass })::text[], \(text { $0.errorMessage })::text[],
                \(PGArray.integer(outcomes.map(\.httpStatus)))::integer[], \(timestamp { $0.startedAt })::timestamptz[],
                \(timestamp { $0.finishedAt })::timestamptz[], \(bigint { $0.size })::bigint[],
                \(timestamp { $0.mtime })::timestamptz[], \(text { $0.job.claimedFrom })::text[],
                \(bigint { $0.device.map { Int64(bitPattern: $0) } })::bigint[],
                \(bigint { $0.inode.map { Int64(bitPattern: $0) } })::bigint[],
                \(bigint { $0.status == .uploaded ? $0.sentSize ?? $0.size : nil })::bigint[]
            )
            """
        )
    }

    /// Turns the claim ranges of `holder` (of every holder, when nil) in the session into rows marked `uploading`
    /// by it, with the range's claim time, and deletes the ranges: what is left to settle of a holder, a row per
    /// file, as the settling has always read it. One statement, so no file is ever held both ways or neither.
    /// With no pending file in the session (the counts say so), the ranges are only deleted.
    ///
    /// - Returns: how many files the ranges still held.
    @discardableResult
    package func markClaimedFiles(sessionID: Int64, heldBy holder: String?) throws -> Int {
        try connection.execute(
            """
            WITH k AS (
                DELETE FROM file_claims
                WHERE session_id = \(sessionID) AND (\(holder)::text IS NULL OR holder = \(holder)::text)
                RETURNING *
            ), held AS (
                SELECT g.id, g.created_at, k.holder, k.claimed_at FROM k CROSS JOIN LATERAL (
                    SELECT g.id, g.created_at FROM file_uploads AS g
                    WHERE g.session_id = \(sessionID) AND g.id BETWEEN k.first_id AND k.last_id
                      AND g.status = 'pending'
                ) AS g
                WHERE fleet_session_has_files(\(sessionID), 'pending')
            )
            UPDATE file_uploads AS f
            SET status = 'uploading', claimed_by = held.holder, claimed_at = held.claimed_at, updated_at = now()
            FROM held
            WHERE f.id = held.id AND f.created_at = held.created_at AND f.status = 'pending'
            """
        ).affectedRows
    }

    /// Puts the session's files still held by `holder` (by anyone, when nil) back to `pending`: their outcome was
    /// never recorded. A session with no row `uploading` (the counts say so: `fleet_session_has_files`), as at the
    /// end of a run that recorded every outcome, has none of its rows read.
    package func releaseClaims(sessionID: Int64, heldBy holder: String? = nil, keeping kept: [Int64] = []) throws -> Int
    {
        try markClaimedFiles(sessionID: sessionID, heldBy: holder)
        return try connection.execute(
            """
            UPDATE file_uploads SET status = 'pending', claimed_by = NULL, claimed_at = NULL, updated_at = now()
            WHERE session_id = \(sessionID) AND status = 'uploading' AND (\(holder)::text IS NULL OR claimed_by = \(holder))
              AND id <> ALL(\(PGArray.bigint(kept))::bigint[])
              AND fleet_session_has_files(\(sessionID), 'uploading')
            """
        ).affectedRows
    }

    /// At the end of this process's work on a session: puts back what it still claims but never recorded, except
    /// `uploaded` (files in the bucket whose result the ledger refused), which stay claimed so that the next run
    /// finds them in the bucket instead of sending them again; logs both.
    package func releaseOwnClaims(sessionID: Int64, uploaded: [Int64], logger: Logger) throws {
        let released = try releaseClaims(sessionID: sessionID, heldBy: ClaimHolder.thisProcess, keeping: uploaded)
        if !uploaded.isEmpty {
            logger.warning(
                "uploaded files whose result the ledger refused stay claimed; the next run checks them in the bucket",
                metadata: ["files": "\(uploaded.count)"]
            )
        }
        if released > 0 { logger.warning("released unrecorded files", metadata: ["files": "\(released)"]) }
    }

    /// Records files the run gave up on before trying them (the store stayed unreachable): the pending files of
    /// the session but those another process's claim range holds.
    package func abandonPendingFiles(sessionID: Int64, errorClass: String, message: String) throws -> Int {
        try takingClaimTurn(sessionID) {
            try connection.execute(
                """
                UPDATE file_uploads SET status = 'failed', error_class = \(errorClass), error_message = \(message),
                    finished_at = now(), updated_at = now()
                WHERE session_id = \(sessionID) AND status = 'pending'
                  AND coalesce(fleet_range_holder(session_id, id) = \(ClaimHolder.thisProcess), true)
                """
            ).affectedRows
        }
    }

    /// Runs `body` in a transaction that first takes the session's turn among claims (`fleet_claim_turn`, which
    /// `fleet_claim_files` and `fleet_claim_range` take too): a statement that changes which pending files are free
    /// (skips them, gives up on them) then sees every range recorded before it, and a claim after it sees its
    /// changes. Without it, such a statement and a claim could both take the same file: a claim writes no file row
    /// that would make them wait for each other. Transaction-scoped, so a pooler in transaction mode is fine.
    func takingClaimTurn<T>(_ sessionID: Int64, _ body: () throws -> T) throws -> T {
        try connection.transaction {
            try connection.execute("SELECT fleet_claim_turn(\(sessionID))")
            return try body()
        }
    }

    /// `\x6162` (bytea's text output) → bytes.
    static func decodeByteaHex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        let digits = Array(text.utf8.dropFirst(2))
        func value(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : (c | 0x20) - 87 }
        var index = 0
        while index + 1 < digits.count {
            bytes.append(value(digits[index]) << 4 | value(digits[index + 1]))
            index += 2
        }
        return bytes
    }
}

extension Ledger {
    /// Display paths of the session's files that need no further upload: uploaded, skipped, or refused for a
    /// reason no retry fixes (an invalid or duplicate key, another project's key, an unreadable file).
    package func settledPaths(sessionID: Int64) throws -> Set<String> {
        let rows = try connection.execute(
            """
            SELECT local_path FROM file_uploads
            WHERE session_id = \(sessionID)
              AND (status IN ('uploaded', 'skipped')
                   OR (status = 'permanent_failure'
                       AND error_class = ANY(\(PGTextArray(Ledger.unfixableClasses + ["file_unreadable"]))::text[])))
            """
        )
        return Set(try (0..<rows.rowCount).map { try rows.decode(String.self, $0, 0, in: "file_uploads") })
    }
}
