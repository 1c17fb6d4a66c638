import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging
import Synchronization

/// Settles what a dead process left behind, before anything is uploaded again: each row it left `uploading` is
/// looked up in the bucket (HeadObject). An object of the recorded size whose checksum matches the local file
/// is recorded `uploaded` (the upload finished, only its outcome was lost); anything else is recorded `failed`
/// (class `interrupted`) so the file is uploaded again. The dead sessions are then closed `interrupted`.
///
/// A row whose file another session stored meanwhile (the key's latest record has the same size and mtime: a run that
/// went ahead while this one could not ask S3) is closed `skipped` instead, without asking the bucket: the
/// object there is that session's upload, not proof of this row's, and counting it again would record the key
/// `uploaded` twice.
package struct Reconciler {
    package var context: S3Context
    package var logger: Logger
    /// HeadObject requests in flight at once, each on a thread with its own client.
    package var concurrency: Int

    package init(context: S3Context, logger: Logger, concurrency: Int = 1) {
        self.context = context
        self.logger = logger
        self.concurrency = max(1, concurrency)
    }

    /// How often `upload` and `retry` ask S3 before they go ahead without settling.
    package static let settleAttempts = 4
    /// The wait between those attempts: up to 1, 2 and 4 s, at least half of each.
    package static let settleBackoff = Backoff(baseSeconds: 1, capSeconds: 4)

    package struct Report: Sendable, Equatable {
        package var sessionsClosed = 0
        package var confirmedUploaded = 0
        package var toUploadAgain = 0
        /// Rows closed `skipped` because another session stored their file meanwhile.
        package var supersededSkipped = 0
    }

    /// - Throws: `LedgerError`; an `S3Error` other than a missing object (the store cannot be asked: nothing is
    ///   changed, the next start tries again).
    /// - Parameters:
    ///   - projectID: Only this project's rows and sessions (the store at hand holds only its buckets).
    ///   - includeOwn: this process has no upload in flight, so rows and sessions it holds itself are leftovers
    ///     too (a run whose end could not be recorded).
    package func run(
        ledger: Ledger,
        deviceID: Int64,
        hostname: String,
        projectID: Int64? = nil,
        includeOwn: Bool = false
    ) throws -> Report {
        let isAlive = { (pid: Int32, since: Timestamp) in
            pid == getpid() ? !includeOwn : LocalProcess.isAlive(pid, since: since)
        }
        let claims = try ledger.deadClaims(
            deviceID: deviceID,
            hostname: hostname,
            projectID: projectID,
            isAlive: isAlive
        )
        var report = try settle(claims, ledger: ledger)
        let sessions = try ledger.deadSessions(
            deviceID: deviceID,
            hostname: hostname,
            projectID: projectID,
            isAlive: isAlive
        )
        for sessionID in sessions {
            // Files still claimed after the settling belong to processes that joined the session: those that
            // are silent are gone too, the others are still uploading theirs.
            for holder in try ledger.otherClaimHolders(sessionID: sessionID)
            where !holder.isAlive(hostname: hostname, processAlive: isAlive) {
                _ = try ledger.releaseClaims(sessionID: sessionID, heldBy: holder.holder)
            }
            _ = try ledger.closeSession(
                sessionID,
                status: .interrupted,
                errorMessage: "the process stopped without closing the session"
            )
            report.sessionsClosed += 1
        }
        if report != Report() {
            logger.notice(
                "reconciled what a stopped process left",
                metadata: [
                    "sessions.closed": "\(report.sessionsClosed)", "files.confirmed": "\(report.confirmedUploaded)",
                    "files.again": "\(report.toUploadAgain)", "files.stored_by_another": "\(report.supersededSkipped)",
                ]
            )
        }
        return report
    }

    /// Looks each claim of a process that is gone up in the bucket and records what it finds: `uploaded` when an
    /// object of the recorded size with the file's checksum is there (the upload finished, only its outcome was
    /// lost), else `failed` with class `interrupted`, to be uploaded again. A claim whose file another session
    /// has stored since is closed `skipped` first, without asking the bucket (`Ledger.skipSupersededClaims`).
    /// The lookups run `concurrency` at a time.
    ///
    /// - Parameter requeue: Put what is not in the bucket back to `pending` instead, for the run at hand to
    ///   upload (the opener of a session, settling a process that joined it).
    /// - Throws: `LedgerError`; an `S3Error` other than a missing object (then only the `skipped` rows, which
    ///   needed no lookup, are recorded).
    package func settle(_ claims: [DeadClaim], ledger: Ledger, requeue: Bool = false) throws -> Report {
        var report = Report()
        guard !claims.isEmpty else { return report }
        let superseded = try ledger.skipSupersededClaims(claims)
        report.supersededSkipped = superseded.count
        let claims = claims.filter { !superseded.contains($0.job.id) }
        guard !claims.isEmpty else { return report }
        let found = try headObjects(claims)
        var outcomes: [(Int64, Int64, UploadOutcome)] = []
        for (index, claim) in claims.enumerated() {
            let info = found[index]
            var outcome: UploadOutcome
            if let info, let verified = try Reconciler.verifiedChecksum(of: claim.job, against: info, ledger: ledger) {
                outcome = UploadOutcome(job: claim.job, status: .uploaded, attempts: 1, startedAt: .now())
                outcome.etag = info.etag
                outcome.sha256 = verified.sha256
                outcome.sentSize = verified.sentSize
                report.confirmedUploaded += 1
            } else if requeue {
                var job = claim.job
                job.claimedFrom = "pending"
                outcome = UploadOutcome(job: job, status: .putBack, attempts: 1, startedAt: .now())
                report.toUploadAgain += 1
            } else {
                outcome = UploadOutcome(job: claim.job, status: .failed, attempts: 1, startedAt: .now())
                outcome.errorClass = "interrupted"
                outcome.errorMessage =
                    "the upload by \(claim.claimedBy) never finished"
                    + (info == nil ? " (no object in the bucket)" : " (the object in the bucket does not match)")
                report.toUploadAgain += 1
            }
            outcomes.append((claim.sessionID, claim.projectID, outcome))
        }
        for (sessionID, group) in Dictionary(grouping: outcomes, by: { $0.0 }) {
            try ledger.recordOutcomes(group.map(\.2), sessionID: sessionID)
        }
        return report
    }

    /// HeadObject for each claim, `concurrency` at a time, each thread with its own client: what the bucket holds
    /// under each claim's key, in the claims' order (`nil`: no such object).
    ///
    /// - Throws: the first `S3Error` other than a missing object; the requests not yet sent are not sent.
    private func headObjects(_ claims: [DeadClaim]) throws(S3Error) -> [ObjectInfo?] {
        let found = Mutex<[Int: ObjectInfo]>([:])
        let next = Mutex(0)
        let firstError = Mutex<S3Error?>(nil)
        let group = DispatchGroup()
        let (context, logger) = (context, logger)
        for lane in 0..<min(concurrency, claims.count) {
            DispatchQueue(label: "fleet.settle.\(lane)").async(group: group) {
                do throws(S3Error) {
                    let client = try context.client(logger: logger)
                    while firstError.withLock({ $0 == nil }) {
                        let index = next.withLock { value -> Int in
                            defer { value += 1 }
                            return value
                        }
                        guard index < claims.count else { return }
                        let job = claims[index].job
                        if let info = try client.headObject(bucket: job.bucket, key: job.key) {
                            found.withLock { $0[index] = info }
                        }
                    }
                } catch {
                    firstError.withLock { $0 = $0 ?? error }
                }
            }
        }
        group.wait()
        if let error = firstError.withLock({ $0 }) { throw error }
        let objects = found.withLock { $0 }
        return claims.indices.map { objects[$0] }
    }

    /// For the opener of a session: whether processes that joined it still have work in it. Those alive hold
    /// files; the files of those that are gone are settled: recorded `uploaded` when the bucket has them, else
    /// put back to `pending`, which is work left too (for the opener's workers).
    ///
    /// - Throws: `LedgerError`, `S3Error`.
    package func othersStillAtWork(sessionID: Int64, ledger: Ledger) throws -> Bool {
        var atWork = false
        for holder in try ledger.otherClaimHolders(sessionID: sessionID) {
            if holder.isAlive(hostname: ProcessInfo.processInfo.hostName, processAlive: LocalProcess.isAlive) {
                atWork = true
                continue
            }
            let claims = try ledger.claims(sessionID: sessionID, heldBy: holder.holder)
            let report = try settle(claims, ledger: ledger, requeue: true)
            if report.toUploadAgain > 0 { atWork = true }
            logger.warning(
                "a process that joined the session is gone; its files were settled against the bucket",
                metadata: [
                    "worker": "\(holder.holder)", "files.uploaded": "\(report.confirmedUploaded)",
                    "files.requeued": "\(report.toUploadAgain)",
                ]
            )
        }
        return atWork
    }

    /// Settles what dead processes of this machine left in the project before `upload` or `retry` sends
    /// anything (a file whose upload did finish is recorded `uploaded` instead of being sent twice), then aborts
    /// the multipart uploads abandoned under the project's prefix (`AbandonedUploads`).
    ///
    /// A transient S3 error is asked again, `settleAttempts` times in all with `settleBackoff` between (some
    /// seconds). When the store still cannot be asked, the run goes on and a warning says so: its files are
    /// recorded and claimed afresh, the leftovers stay `uploading` and their session `running` until a run can
    /// ask. That run closes each leftover whose file a session stored meanwhile as `skipped` (see `settle`), so
    /// a file is never counted `uploaded` twice. An abort that fails is a warning too: it is tried at the next
    /// start.
    ///
    /// - Parameter config: The project's configuration (its prefix, the abandoned uploads' age).
    /// - Throws: `LedgerError`.
    package func settleBeforeRun(ledger: Ledger, deviceID: Int64, projectID: Int64, config: FleetConfig) throws {
        try LocalDeleter(ledger: ledger, projectID: projectID, deviceID: deviceID, logger: logger).settleLeftovers()
        var attempt = 1
        while true {
            do {
                _ = try run(
                    ledger: ledger,
                    deviceID: deviceID,
                    hostname: ProcessInfo.processInfo.hostName,
                    projectID: projectID
                )
                break
            } catch let error as S3Error where error.isTransient && attempt < Self.settleAttempts {
                let wait = Self.settleBackoff.halfJitteredDelay(afterAttempt: attempt, jitter: .random(in: 0...1))
                logger.info(
                    "cannot check what a stopped run left in flight; asking again",
                    metadata: ["error": "\(error)", "attempt": "\(attempt)", "wait.seconds": "\(wait)"]
                )
                Thread.sleep(forTimeInterval: wait)
                attempt += 1
            } catch let error as S3Error {
                logger.warning(
                    "cannot check what a stopped run left in flight; it is settled by the next run",
                    metadata: ["error": "\(error)", "attempts": "\(attempt)"]
                )
                break
            }
        }
        try abortAbandonedUploads(ledger: ledger, projectID: projectID, deviceID: deviceID, config: config)
    }

    /// `AbandonedUploads.abort`, with S3 problems logged as a warning: an upload left open only costs storage
    /// until the next start, and is no reason to hold back a run.
    ///
    /// - Throws: `LedgerError`.
    package func abortAbandonedUploads(
        ledger: Ledger,
        projectID: Int64,
        deviceID: Int64?,
        config: FleetConfig
    ) throws {
        do {
            try AbandonedUploads(config: config, context: context, logger: logger)
                .abort(ledger: ledger, projectID: projectID, deviceID: deviceID)
        } catch let error as LedgerError {
            throw error
        } catch {
            logger.warning(
                "cannot abort the multipart uploads abandoned in the bucket; the next start tries again",
                metadata: ["error": "\(error)"]
            )
        }
    }

    /// The local file's SHA-256 (hex) when the object is provably its copy: same size, the file unchanged since it
    /// was recorded, and the object's checksum (or ETag) equal to the one the file gives (`ObjectVerification`):
    /// for an object sent in parts, the composite of the parts the ledger recorded for the row's upload, each of
    /// them the file's bytes. Nil when that cannot be shown.
    ///
    /// A file recorded to go up compressed is compressed again, as its upload did: the same file at the same level
    /// makes the same bytes (`ZstdCompressor`), so the object is checked against that copy, and the original's
    /// SHA-256 is returned with the size of the copy (what was sent).
    ///
    /// - Throws: `LedgerError` (the recorded parts of a multipart object could not be read).
    static func verifiedChecksum(
        of job: UploadJob,
        against info: ObjectInfo,
        ledger: Ledger
    ) throws -> (sha256: String, sentSize: Int64?)? {
        let compression = Compression(recorded: job.codec)
        guard compression != nil || info.size == job.size, let file = try? LocalFile(pathBytes: job.path),
            let status = try? file.status(), status.size == job.size, status.mtime == job.mtime
        else { return nil }
        let parts = info.isMultipart ? try ledger.recordedParts(of: job) : []
        guard let compression else {
            return ObjectVerification.sha256(ofCopyOf: file, size: job.size, object: info, parts: parts)
                .map { ($0, nil) }
        }
        guard let copy = try? CompressedCopy(of: file, level: compression.level), copy.size == info.size,
            ObjectVerification.sha256(ofCopyOf: copy.file, size: copy.size, object: info, parts: parts) != nil
        else { return nil }
        return (copy.originalSHA256.hexString, copy.size)
    }
}
