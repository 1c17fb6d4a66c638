import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// The ledger's record of the multipart uploads a run is sending: the upload id as soon as S3 gives it, and
/// each part as S3 acknowledges it. A run killed mid-file leaves enough behind for the next one to send only
/// the missing parts.
///
/// The journal helps and never decides: when the ledger cannot be written, the upload goes on and only its
/// resumability is lost (a warning says so). Whether a recorded part can be reused is always checked against
/// S3 (ListParts) and the file's bytes.
///
/// Every worker and part lane of a run writes through the run's `SharedLedger`. Multipart files are large, so
/// one insert per part is a small cost next to sending it.
package final class MultipartJournal: Sendable {
    private let ledger: SharedLedger
    private let logger: Logger
    package let projectID: Int64
    /// This machine's name as `claimed_by` records it (`host:pid`).
    package let hostname: String

    package init(ledger: SharedLedger, projectID: Int64, logger: Logger) {
        self.ledger = ledger
        self.projectID = projectID
        self.logger = logger
        hostname = ProcessInfo.processInfo.hostName
    }

    /// Uploads recorded for the key and never completed, newest first; none when the ledger cannot say.
    func unfinished(bucket: String, key: String) -> [RecordedMultipartUpload] {
        attempt("read the uploads recorded", key) {
            try $0.unfinishedMultipartUploads(projectID: projectID, bucket: bucket, key: key)
        } ?? []
    }

    func started(_ job: UploadJob, uploadID: String, partSize: Int64) {
        attempt("record the upload id", job.key) {
            try $0.recordMultipartUpload(job, uploadID: uploadID, partSize: partSize)
        }
    }

    func finished(_ part: UploadedPart, of job: UploadJob, uploadID: String) {
        attempt("record a part", job.key) { try $0.recordPart(RecordedPart(part), of: job, uploadID: uploadID) }
    }

    func forget(bucket: String, key: String, uploadID: String) {
        attempt("forget an aborted upload", key) {
            try $0.forgetMultipartUpload(projectID: projectID, bucket: bucket, key: key, uploadID: uploadID)
        }
    }

    /// Whether a row's holder may still be sending the upload: a live process on this machine, or any process on
    /// another (it cannot be asked; its own run or the reconciliation there settles it).
    func mayBeInFlight(_ holder: RecordedMultipartUpload.Holder, ownFileID: Int64) -> Bool {
        guard holder.status == "uploading", holder.fileID != ownFileID else { return false }
        guard let claimedBy = holder.claimedBy, let pid = ClaimHolder.pid(of: claimedBy, on: hostname) else {
            return true
        }
        if pid == getpid() { return true }
        return LocalProcess.isAlive(pid, since: holder.claimedAt ?? Timestamp(microseconds: 0))
    }

    /// Runs `body` on the run's connection; a failure is a warning (a lost connection is made again by the
    /// next claim or result batch).
    private func attempt<T>(_ what: String, _ key: String, _ body: (Ledger) throws -> T) -> T? {
        ledger.use { ledger in
            do {
                return try body(ledger)
            } catch {
                logger.warning(
                    "multipart journal: cannot \(what); the file still uploads, but a crash would restart it",
                    metadata: ["s3.key": "\(key)", "error": "\(error)"]
                )
                return nil
            }
        }
    }
}

extension UploadedPart {
    /// A part as the ledger recorded it.
    init(_ recorded: RecordedPart) {
        self.init(
            partNumber: recorded.partNumber,
            etag: recorded.etag,
            checksumSHA256: recorded.checksumSHA256,
            size: recorded.size
        )
    }
}

extension RecordedPart {
    /// A part S3 acknowledged, for the ledger.
    init(_ part: UploadedPart) {
        self.init(partNumber: part.partNumber, etag: part.etag, checksumSHA256: part.checksumSHA256, size: part.size)
    }
}
