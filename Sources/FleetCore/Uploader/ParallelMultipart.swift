import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging
import Synchronization

/// Uploads one large file in parts sent by several connections at once, resuming an upload a killed or
/// failed run left unfinished.
///
/// One sequential read computes every part's SHA-256 and the whole file's. With a journal, an unfinished upload
/// the ledger recorded for the same key, size, mtime and part size is continued: a recorded part is reused when
/// ListParts still shows it with the recorded ETag and size and its checksum equals the file's bytes now; every
/// other part is sent. Uploads recorded for the key that cannot be continued (the file changed, the part size
/// differs, S3 no longer holds them) are aborted. Then `concurrency` threads, each with its own client, send the
/// missing parts, S3 verifying each against its checksum, and the journal records each part as S3 acknowledges
/// it.
///
/// A transient failure leaves the upload open for the next attempt to continue; a permanent one (or a file that
/// changed) aborts it, so no part is left behind.
package struct ParallelMultipart {
    var context: S3Context
    var partSize: Int64
    var concurrency: Int
    var timeouts: HTTPTimeouts
    var logger: Logger

    /// Where a journaled upload is recorded: the journal, and the claimed row the file belongs to.
    package struct Journaling: Sendable {
        package var journal: MultipartJournal
        package var job: UploadJob

        package init(journal: MultipartJournal, job: UploadJob) {
            self.journal = journal
            self.job = job
        }
    }

    package init(context: S3Context, partSize: Int64, concurrency: Int, timeouts: HTTPTimeouts, logger: Logger) {
        self.context = context
        self.partSize = partSize
        self.concurrency = concurrency
        self.timeouts = timeouts
        self.logger = logger
    }

    package func upload(
        _ file: LocalFile,
        bucket: String,
        key: String,
        client: S3Client,
        journaling: Journaling? = nil
    ) throws(S3Error)
        -> UploadedObject
    {
        let before = try S3Error.reading { try file.status() }
        let whole = SHA256()
        var digests: [[UInt8]] = []
        var offset: Int64 = 0
        while offset < before.size {
            let length = min(partSize, before.size - offset)
            digests.append(try S3Error.reading { try file.sha256(offset: offset, length: length, also: whole) })
            offset += length
        }
        try client.requireUnchanged(file, since: before, "while its checksums were computed")

        var reused: [Int: UploadedPart] = [:]
        let uploadID: String
        if let resumed = try resume(
            digests: digests,
            file: before,
            bucket: bucket,
            key: key,
            client: client,
            journaling
        ) {
            uploadID = resumed.uploadID
            reused = resumed.parts
            logger.info(
                "resuming multipart upload",
                metadata: [
                    "s3.key": "\(key)", "parts.reused": "\(reused.count)", "parts.total": "\(digests.count)",
                ]
            )
        } else {
            uploadID = try client.createMultipartUpload(bucket: bucket, key: key)
        }
        if let journaling { journaling.journal.started(journaling.job, uploadID: uploadID, partSize: partSize) }

        let parts = Mutex<[UploadedPart?]>((0..<digests.count).map { reused[$0 + 1] })
        let missing = (0..<digests.count).filter { reused[$0 + 1] == nil }
        let next = Mutex(0)
        let firstError = Mutex<S3Error?>(nil)
        let group = DispatchGroup()
        let (descriptor, size, partSize, context, timeouts, logger) = (
            file.descriptor, before.size, partSize, context, timeouts, logger
        )
        let digestList = digests
        for lane in 0..<min(concurrency, missing.count) {
            DispatchQueue(label: "fleet.multipart.\(lane)").async(group: group) {
                do throws(S3Error) {
                    let laneClient = try context.client(logger: logger, timeouts: timeouts)
                    while firstError.withLock({ $0 == nil }) {
                        let position = next.withLock { value -> Int in
                            defer { value += 1 }
                            return value
                        }
                        guard position < missing.count else { return }
                        let index = missing[position]
                        let start = Int64(index) * partSize
                        let part = try laneClient.uploadPart(
                            bucket: bucket,
                            key: key,
                            uploadID: uploadID,
                            partNumber: index + 1,
                            region: FileRegion(
                                descriptor: descriptor,
                                offset: start,
                                length: min(partSize, size - start)
                            ),
                            sha256: digestList[index]
                        )
                        if let journaling { journaling.journal.finished(part, of: journaling.job, uploadID: uploadID) }
                        parts.withLock { $0[index] = part }
                    }
                } catch {
                    firstError.withLock { $0 = $0 ?? error }
                }
            }
        }
        group.wait()
        do throws(S3Error) {
            if let error = firstError.withLock({ $0 }) { throw error }
            let finished = parts.withLock { $0.compactMap { $0 } }
            let etag = try client.completeMultipartUpload(bucket: bucket, key: key, uploadID: uploadID, parts: finished)
            try client.requireUnchanged(file, since: before, "while it was sent")
            return UploadedObject(
                bucket: bucket,
                key: key,
                etag: etag,
                sha256: whole.finalize().hexString,
                versionID: nil,
                size: before.size,
                mtime: before.mtime,
                partCount: finished.count,
                multipartUploadID: uploadID,
                device: before.device,
                inode: before.inode
            )
        } catch {
            // Kept open for the next attempt, which continues from the recorded parts, unless no attempt could
            // use it: the file changed, or the failure is permanent.
            if error.isTransient, error.kind != .fileChanged, journaling != nil { throw error }
            abort(uploadID, bucket: bucket, key: key, client: client, journaling: journaling)
            throw error
        }
    }

    /// The recorded upload to continue, with the parts that need not be sent again; nil to start a new one.
    /// Recorded uploads of the key that cannot be continued, and that no live process may be sending, are aborted.
    private func resume(
        digests: [[UInt8]],
        file: LocalFile.Status,
        bucket: String,
        key: String,
        client: S3Client,
        _ journaling: Journaling?
    ) throws(S3Error) -> (uploadID: String, parts: [Int: UploadedPart])? {
        guard let journaling else { return nil }
        let journal = journaling.journal
        var chosen: (uploadID: String, parts: [Int: UploadedPart])?
        for recorded in journal.unfinished(bucket: bucket, key: key) {
            if recorded.holders.contains(where: { journal.mayBeInFlight($0, ownFileID: journaling.job.id) }) {
                continue
            }
            if chosen == nil, recorded.size == file.size, recorded.mtime == file.mtime, recorded.partSize == partSize {
                let listed: [UploadedPart]
                do {
                    listed = try client.listParts(bucket: bucket, key: key, uploadID: recorded.uploadID)
                } catch  where error.kind == .noSuchUpload {
                    journal.forget(bucket: bucket, key: key, uploadID: recorded.uploadID)
                    continue
                }
                let held = Dictionary(listed.map { ($0.partNumber, $0) }, uniquingKeysWith: { _, last in last })
                var parts: [Int: UploadedPart] = [:]
                for part in recorded.parts where part.partNumber >= 1 && part.partNumber <= digests.count {
                    guard let there = held[part.partNumber], there.size == part.size,
                        Self.sameETag(there.etag, part.etag),
                        part.checksumSHA256 == digests[part.partNumber - 1].base64
                    else { continue }
                    parts[part.partNumber] = UploadedPart(part)
                }
                chosen = (recorded.uploadID, parts)
                continue
            }
            abort(recorded.uploadID, bucket: bucket, key: key, client: client, journaling: journaling)
        }
        return chosen
    }

    /// Aborts the uploads recorded for the key that no live process may be sending: the file they were for cannot
    /// be uploaded any more.
    package func abandonRecorded(bucket: String, key: String, client: S3Client, journaling: Journaling) {
        for recorded in journaling.journal.unfinished(bucket: bucket, key: key)
        where !recorded.holders.contains(where: { journaling.journal.mayBeInFlight($0, ownFileID: journaling.job.id) })
        {
            abort(recorded.uploadID, bucket: bucket, key: key, client: client, journaling: journaling)
        }
    }

    /// Aborts an upload and forgets it; a failure is only logged (the bucket's lifecycle rule or a later run
    /// cleans up).
    private func abort(_ uploadID: String, bucket: String, key: String, client: S3Client, journaling: Journaling?) {
        do {
            try client.abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID)
            journaling?.journal.forget(bucket: bucket, key: key, uploadID: uploadID)
        } catch {
            logger.warning(
                "could not abort multipart upload",
                metadata: ["s3.key": "\(key)", "error": "\(error)"]
            )
        }
    }

    static func sameETag(_ a: String, _ b: String) -> Bool {
        let quotes = CharacterSet(charactersIn: "\"")
        return a.trimmingCharacters(in: quotes).lowercased() == b.trimmingCharacters(in: quotes).lowercased()
    }
}
