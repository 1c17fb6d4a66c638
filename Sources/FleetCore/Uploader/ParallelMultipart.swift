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
/// differs, S3 no longer holds them) are aborted. Then the missing parts are sent, `concurrency` at once (as
/// transfers on the caller's `TransferLoop`, or on as many threads each with its own client), S3 verifying each
/// against its checksum, and the journal records each part as S3 acknowledges it.
///
/// The part size is the configured one raised to fit S3's 10,000 parts (`PartPlan`), or the one a resumable
/// upload recorded. A CompleteMultipartUpload without an answer, or answered `NoSuchUpload`, and an upload the
/// next attempt finds gone, are settled by the object in the bucket: when it is the one the parts make
/// (`ObjectVerification`), the upload is done and never started again.
///
/// A transient failure leaves the upload open for the next attempt to continue; a permanent one (or a file that
/// changed) aborts it, so no part is left behind. A stop of the run (`stop`) starts no further part, gives the
/// parts in flight the run's transfer grace and then ends them: the upload stays open with the parts that made
/// it, for the next run.
package struct ParallelMultipart {
    var context: S3Context
    var partSize: Int64
    var concurrency: Int
    var timeouts: HTTPTimeouts
    var logger: Logger
    /// The run this upload belongs to, whose stop ends it.
    var stop: RunState?

    /// Where a journaled upload is recorded: the journal, and the claimed row the file belongs to.
    package struct Journaling: Sendable {
        package var journal: MultipartJournal
        package var job: UploadJob

        package init(journal: MultipartJournal, job: UploadJob) {
            self.journal = journal
            self.job = job
        }
    }

    package init(
        context: S3Context,
        partSize: Int64,
        concurrency: Int,
        timeouts: HTTPTimeouts,
        logger: Logger,
        stop: RunState? = nil
    ) {
        self.context = context
        self.partSize = partSize
        self.concurrency = concurrency
        self.timeouts = timeouts
        self.logger = logger
        self.stop = stop
    }

    /// Uploads the file, its parts sent by `concurrency` threads, each with a client of its own.
    ///
    /// - Parameters:
    ///   - identity: When `file` is a copy made of another file (a `CompressedCopy`), that file's status as it was
    ///     read: the journal's records, which describe the file a row is for, are matched against it.
    ///   - attributes: The object's Content-Type and metadata.
    package func upload(
        _ file: LocalFile,
        bucket: String,
        key: String,
        client: S3Client,
        journaling: Journaling? = nil,
        identity: LocalFile.Status? = nil,
        attributes: ObjectAttributes = .plain
    ) throws(S3Error)
        -> UploadedObject
    {
        let plan: Plan
        let described = Described(identity: identity, attributes: attributes)
        switch try start(file, described, bucket: bucket, key: key, client: client, journaling) {
        case .done(let object): return object
        case .send(let next): plan = next
        }
        let sent = sendOnThreads(plan, descriptor: file.descriptor, bucket: bucket, key: key, journaling)
        return try finish(plan, sent, file, bucket: bucket, key: key, client: client, journaling)
    }

    /// Uploads the file with its parts sent as `concurrency` transfers at once on `loop`, by `client` (the
    /// loop's); the rest (checksums, resuming, completing, the journal) runs on other threads while the calling
    /// task waits. Call it from a task of `loop`. `identity` and `attributes` as for the blocking `upload`.
    package func upload(
        _ file: LocalFile,
        bucket: String,
        key: String,
        client: S3Client,
        loop: TransferLoop,
        journaling: Journaling? = nil,
        identity: LocalFile.Status? = nil,
        attributes: ObjectAttributes = .plain
    ) async throws(S3Error) -> UploadedObject {
        let opened = Handed(file)
        let plan: Plan
        let described = Described(identity: identity, attributes: attributes)
        let started = await loop.offload { () -> Result<Start, S3Error> in
            Result { () throws(S3Error) -> Start in
                try start(opened.value, described, bucket: bucket, key: key, client: blockingClient(), journaling)
            }
        }
        switch try started.get() {
        case .done(let object): return object
        case .send(let next): plan = next
        }
        let sent = await sendOnLoop(
            plan,
            descriptor: file.descriptor,
            bucket: bucket,
            key: key,
            client: Handed(client),
            loop: loop,
            journaling
        )
        return try await loop.offload { () -> Result<UploadedObject, S3Error> in
            Result { () throws(S3Error) -> UploadedObject in
                try finish(plan, sent, opened.value, bucket: bucket, key: key, client: blockingClient(), journaling)
            }
        }
        .get()
    }

    /// A client for the blocking requests of one upload, ended by the run's stop.
    private func blockingClient() throws(S3Error) -> S3Client {
        let client = try context.client(logger: logger, timeouts: timeouts)
        if let stop { client.shouldEnd = { stop.transfersMustEnd } }
        return client
    }

    /// What is left to send of a file: its checksums, the upload its parts go to, and the parts S3 holds already.
    private struct Plan: Sendable {
        var before: LocalFile.Status
        var partSize: Int64
        /// Every part's SHA-256, in order.
        var digests: [[UInt8]]
        /// The whole file's SHA-256, hex.
        var sha256: String
        var uploadID: String
        /// Parts an earlier run sent that the upload keeps, by part number.
        var reused: [Int: UploadedPart]

        /// Part indexes (from 0) still to send.
        var missing: [Int] { (0..<digests.count).filter { reused[$0 + 1] == nil } }

        /// The bytes of part `index` (from 0).
        func region(_ index: Int, descriptor: Int32) -> FileRegion {
            let start = Int64(index) * partSize
            return FileRegion(
                descriptor: descriptor,
                offset: start,
                length: min(partSize, before.size - start),
                unchangedSince: (before.size, before.mtime)
            )
        }
    }

    /// What the object is of, when not simply the file sent, and what it carries besides its bytes.
    private struct Described: Sendable {
        var identity: LocalFile.Status?
        var attributes: ObjectAttributes
    }

    private enum Start: Sendable {
        /// Nothing to send: an earlier attempt completed the upload.
        case done(UploadedObject)
        case send(Plan)
    }

    /// The parts sent, by index, and the first error that ended the sending (the rest was not started).
    private struct Sent: Sendable {
        var parts: [UploadedPart?]
        var error: S3Error?
    }

    /// Computes every part's checksum and the file's in one read, and continues a recorded upload of the file or
    /// starts one.
    private func start(
        _ file: LocalFile,
        _ described: Described,
        bucket: String,
        key: String,
        client: S3Client,
        _ journaling: Journaling?
    ) throws(S3Error) -> Start {
        let before = try S3Error.reading { try file.status() }
        let identity = described.identity ?? before
        let partSize = try self.partSize(for: before, identity: identity, bucket: bucket, key: key, journaling)
        let whole = SHA256()
        var digests: [[UInt8]] = []
        var offset: Int64 = 0
        while offset < before.size {
            if stop?.stopRequested == true {
                throw S3Error(.interrupted, "stopped while its checksums were computed; nothing was sent")
            }
            let length = min(partSize, before.size - offset)
            digests.append(try S3Error.reading { try file.sha256(offset: offset, length: length, also: whole) })
            offset += length
        }
        try client.requireUnchanged(file, since: before, "while its checksums were computed")
        let sha256 = whole.finalize().hexString

        let resumed = try resume(
            digests: digests,
            partSize: partSize,
            file: before,
            identity: identity,
            bucket: bucket,
            key: key,
            client: client,
            journaling
        )
        var reused: [Int: UploadedPart] = [:]
        let uploadID: String
        switch resumed {
        case .completed(let recordedID, let object):
            // An earlier attempt's CompleteMultipartUpload went through; only its answer was lost.
            try client.requireUnchanged(file, since: before, "while it was sent")
            logger.info("an earlier attempt completed the multipart upload", metadata: ["s3.key": "\(key)"])
            return .done(
                UploadedObject(
                    bucket: bucket,
                    key: key,
                    etag: object.etag,
                    sha256: sha256,
                    versionID: object.versionID,
                    size: before.size,
                    mtime: before.mtime,
                    partCount: digests.count,
                    multipartUploadID: recordedID,
                    device: before.device,
                    inode: before.inode
                )
            )
        case .continuing(let recordedID, let parts):
            uploadID = recordedID
            reused = parts
            logger.info(
                "resuming multipart upload",
                metadata: [
                    "s3.key": "\(key)", "parts.reused": "\(reused.count)", "parts.total": "\(digests.count)",
                ]
            )
        case .none:
            uploadID = try client.createMultipartUpload(bucket: bucket, key: key, attributes: described.attributes)
        }
        if let journaling { journaling.journal.started(journaling.job, uploadID: uploadID, partSize: partSize) }
        return .send(
            Plan(
                before: before,
                partSize: partSize,
                digests: digests,
                sha256: sha256,
                uploadID: uploadID,
                reused: reused
            )
        )
    }

    /// Sends the missing parts of `plan` on `concurrency` threads, each with a client of its own; the journal
    /// records each part as S3 acknowledges it.
    private func sendOnThreads(
        _ plan: Plan,
        descriptor: Int32,
        bucket: String,
        key: String,
        _ journaling: Journaling?
    ) -> Sent {
        let parts = Mutex<[UploadedPart?]>((0..<plan.digests.count).map { plan.reused[$0 + 1] })
        let missing = plan.missing
        let next = Mutex(0)
        let firstError = Mutex<S3Error?>(nil)
        let group = DispatchGroup()
        for lane in 0..<min(concurrency, missing.count) {
            DispatchQueue(label: "fleet.multipart.\(lane)").async(group: group) {
                do throws(S3Error) {
                    let laneClient = try blockingClient()
                    while firstError.withLock({ $0 == nil }) {
                        if stop?.stopRequested == true { throw S3Error(.interrupted, "stopped") }
                        let position = next.withLock { value -> Int in
                            defer { value += 1 }
                            return value
                        }
                        guard position < missing.count else { return }
                        let index = missing[position]
                        let part = try laneClient.uploadPart(
                            bucket: bucket,
                            key: key,
                            uploadID: plan.uploadID,
                            partNumber: index + 1,
                            region: plan.region(index, descriptor: descriptor),
                            sha256: plan.digests[index]
                        )
                        if let journaling {
                            journaling.journal.finished(part, of: journaling.job, uploadID: plan.uploadID)
                        }
                        parts.withLock { $0[index] = part }
                    }
                } catch {
                    firstError.withLock { $0 = $0 ?? error }
                }
            }
        }
        group.wait()
        return Sent(parts: parts.withLock { $0 }, error: firstError.withLock { $0 })
    }

    /// Sends the missing parts of `plan` as `concurrency` transfers at once on `loop`; the journal records each
    /// part (on another thread) as S3 acknowledges it.
    private func sendOnLoop(
        _ plan: Plan,
        descriptor: Int32,
        bucket: String,
        key: String,
        client: Handed<S3Client>,
        loop: TransferLoop,
        _ journaling: Journaling?
    ) async -> Sent {
        let sending = Handed(
            PartsInFlight(parts: (0..<plan.digests.count).map { plan.reused[$0 + 1] }, missing: plan.missing)
        )
        await withTaskGroup(of: Void.self) { group in
            // The tasks run on `loop`, as does every use of `sending` and of the client.
            for _ in 0..<min(concurrency, plan.missing.count) {
                group.addTask(executorPreference: loop) {
                    let sending = sending.value
                    while sending.error == nil, let index = sending.next() {
                        if stop?.stopRequested == true {
                            sending.fail(S3Error(.interrupted, "stopped"))
                            return
                        }
                        do throws(S3Error) {
                            let part = try await client.value.uploadPart(
                                bucket: bucket,
                                key: key,
                                uploadID: plan.uploadID,
                                partNumber: index + 1,
                                region: plan.region(index, descriptor: descriptor),
                                sha256: plan.digests[index]
                            )
                            if let journaling {
                                await loop.offload {
                                    journaling.journal.finished(part, of: journaling.job, uploadID: plan.uploadID)
                                }
                            }
                            sending.parts[index] = part
                        } catch {
                            sending.fail(error)
                        }
                    }
                }
            }
        }
        return Sent(parts: sending.value.parts, error: sending.value.error)
    }

    /// Completes the upload once every part was sent; keeps it open for the next attempt after a transient
    /// failure, aborts it otherwise.
    private func finish(
        _ plan: Plan,
        _ sent: Sent,
        _ file: LocalFile,
        bucket: String,
        key: String,
        client: S3Client,
        _ journaling: Journaling?
    ) throws(S3Error) -> UploadedObject {
        let before = plan.before
        do throws(S3Error) {
            if var error = sent.error {
                if error.kind == .interrupted {
                    let count = sent.parts.count { $0 != nil }
                    error.message =
                        "stopped after \(count) of \(plan.digests.count) parts; the upload stays open with them and "
                        + "the next run continues from there"
                }
                throw error
            }
            let finished = sent.parts.compactMap { $0 }
            // A file that changed while its parts were sent is not completed into an object: the upload is
            // aborted below and the next attempt sends the file as it is then.
            try client.requireUnchanged(file, since: before, "while it was sent")
            let completed = try complete(plan.uploadID, parts: finished, size: before.size, bucket, key, client)
            try client.requireUnchanged(file, since: before, "while it was sent")
            return UploadedObject(
                bucket: bucket,
                key: key,
                etag: completed.etag,
                sha256: plan.sha256,
                versionID: completed.versionID,
                size: before.size,
                mtime: before.mtime,
                partCount: finished.count,
                multipartUploadID: plan.uploadID,
                device: before.device,
                inode: before.inode
            )
        } catch {
            // Kept open for the next attempt, which continues from the recorded parts, unless no attempt could
            // use it: the file changed, or the failure is permanent.
            if error.isTransient, error.kind != .fileChanged, journaling != nil { throw error }
            abort(plan.uploadID, bucket: bucket, key: key, client: client, journaling: journaling)
            throw error
        }
    }

    /// Sends CompleteMultipartUpload. When no answer says how it went (the connection broke after the request
    /// went out), or the store answers `NoSuchUpload` (a Complete that went through before is no longer
    /// known), the object in the bucket tells: if it is the one these parts make, the upload is complete and is
    /// never started again.
    ///
    /// - Returns: the object's ETag, and its version when a look at the object found it.
    private func complete(
        _ uploadID: String,
        parts: [UploadedPart],
        size: Int64,
        _ bucket: String,
        _ key: String,
        _ client: S3Client
    ) throws(S3Error) -> (etag: String, versionID: String?) {
        do {
            let etag = try client.completeMultipartUpload(bucket: bucket, key: key, uploadID: uploadID, parts: parts)
            return (etag, nil)
        } catch  where error.mayHaveTakenEffect || error.kind == .noSuchUpload {
            // The parts' checksums are the file's part digests, taken before they were sent.
            guard let object = try? client.headObject(bucket: bucket, key: key), object.size == size,
                ObjectVerification.isAssembled(object, from: parts.map(RecordedPart.init))
            else { throw error }
            logger.notice(
                "CompleteMultipartUpload went through although its answer did not say so",
                metadata: ["s3.key": "\(key)", "error": "\(error.message)"]
            )
            return (object.etag, object.versionID)
        }
    }

    /// What an upload of the file recorded earlier leaves to do.
    private enum Resumption {
        /// Continue this upload: send the parts not in `parts`, then complete it.
        case continuing(uploadID: String, parts: [Int: UploadedPart])
        /// It was completed (only the answer was lost): the object is the file's copy.
        case completed(uploadID: String, object: ObjectInfo)
        /// Start a new upload.
        case none
    }

    /// The part size for the file: the one an unfinished upload of it recorded, when that upload may be
    /// continued and the size suits S3's limits, so a resumed upload cuts the file as it was cut before; else
    /// the configured one, raised to fit 10,000 parts.
    ///
    /// - Throws: `.entityTooLarge` for a file above 5 TiB.
    private func partSize(
        for file: LocalFile.Status,
        identity: LocalFile.Status,
        bucket: String,
        key: String,
        _ journaling: Journaling?
    ) throws(S3Error) -> Int64 {
        let planned = try PartPlan(fileSize: file.size, preferredPartSize: partSize).partSize
        guard let journaling else { return planned }
        let journal = journaling.journal
        for recorded in journal.unfinished(bucket: bucket, key: key)
        where !recorded.holders.contains(where: { journal.mayBeInFlight($0, ownFileID: journaling.job.id) }) {
            guard recorded.size == identity.size, recorded.mtime == identity.mtime, let recordedSize = recorded.partSize
            else { continue }
            return PartPlan.accepts(partSize: recordedSize, fileSize: file.size) ? recordedSize : planned
        }
        return planned
    }

    /// The recorded upload to continue, with the parts that need not be sent again, or the one that turns out
    /// completed; `.none` to start a new one. Recorded uploads of the key that cannot be continued, and that no
    /// live process may be sending, are aborted.
    private func resume(
        digests: [[UInt8]],
        partSize: Int64,
        file: LocalFile.Status,
        identity: LocalFile.Status,
        bucket: String,
        key: String,
        client: S3Client,
        _ journaling: Journaling?
    ) throws(S3Error) -> Resumption {
        guard let journaling else { return .none }
        let journal = journaling.journal
        var chosen: (uploadID: String, parts: [Int: UploadedPart])?
        for recorded in journal.unfinished(bucket: bucket, key: key) {
            if recorded.holders.contains(where: { journal.mayBeInFlight($0, ownFileID: journaling.job.id) }) {
                continue
            }
            if chosen == nil, recorded.size == identity.size, recorded.mtime == identity.mtime,
                recorded.partSize == partSize
            {
                let listed: [UploadedPart]
                do {
                    listed = try client.listParts(bucket: bucket, key: key, uploadID: recorded.uploadID)
                } catch  where error.kind == .noSuchUpload {
                    // Gone: aborted, or completed by an attempt whose answer was lost. The object tells which.
                    if let object = try completedObject(
                        recorded,
                        digests: digests,
                        size: file.size,
                        bucket,
                        key,
                        client
                    ) {
                        return .completed(uploadID: recorded.uploadID, object: object)
                    }
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
        return chosen.map { .continuing(uploadID: $0.uploadID, parts: $0.parts) } ?? .none
    }

    /// The object in the bucket when it is the one the recorded upload's parts make and those parts hold the
    /// file's bytes now (their checksums equal the file's part digests); nil when it is not.
    private func completedObject(
        _ recorded: RecordedMultipartUpload,
        digests: [[UInt8]],
        size: Int64,
        _ bucket: String,
        _ key: String,
        _ client: S3Client
    ) throws(S3Error) -> ObjectInfo? {
        let parts = recorded.parts.sorted { $0.partNumber < $1.partNumber }
        guard parts.count == digests.count,
            zip(parts, digests).allSatisfy({ $0.checksumSHA256 == $1.base64 }),
            let object = try client.headObject(bucket: bucket, key: key),
            object.size == size, ObjectVerification.isAssembled(object, from: parts)
        else { return nil }
        return object
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

/// The parts of one upload being sent on a transfer loop: used by the loop's tasks alone, on its thread.
private final class PartsInFlight {
    var parts: [UploadedPart?]
    private(set) var error: S3Error?
    private let missing: [Int]
    private var position = 0

    init(parts: [UploadedPart?], missing: [Int]) {
        self.parts = parts
        self.missing = missing
    }

    /// The next part index to send, nil when every one was started.
    func next() -> Int? {
        guard position < missing.count else { return nil }
        defer { position += 1 }
        return missing[position]
    }

    /// The first error ends the sending: no further part starts.
    func fail(_ error: S3Error) {
        if self.error == nil { self.error = error }
    }
}
