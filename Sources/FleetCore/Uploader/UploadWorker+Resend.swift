import FleetAWS
import FleetLedger
import FleetSystem
import Logging

extension UploadWorker {
    /// Sends a file as one PutObject such that one ledger row never writes the object twice (in a versioned
    /// bucket, never leaves two versions), even when an answer is lost after the store acted on the request and
    /// the request is sent again — by the next attempt, or by libcurl itself, which resends a request on a new
    /// connection when a reused one closes before any answer.
    ///
    /// Every write is conditional on what the key is believed to hold: nothing at first (`If-None-Match: *`),
    /// the object a look found otherwise (`If-Match` on its ETag). A write whose condition fails (412) and an
    /// attempt after one whose outcome is unknown (`lookFirst`) look at the key (HeadObject) before anything is
    /// sent: when it holds the file's copy (checksum or ETag equal to the file's) that object is the upload and
    /// nothing is sent; else the file is sent conditional on what the look found.
    ///
    /// - Throws: `.preconditionFailed` (transient) when the key keeps changing between look and write.
    func putObject(
        _ file: LocalFile,
        job: UploadJob,
        client: S3Client,
        lookFirst: Bool,
        attributes: ObjectAttributes = .plain,
        logger: Logger
    ) async throws(S3Error) -> UploadedObject {
        var condition = PutCondition.absent
        if lookFirst {
            switch try await look(file, job: job, client: client, logger: logger) {
            case .stored(let object): return object
            case .send(let found): condition = found
            }
        }
        var looks = 0
        while true {
            do throws(S3Error) {
                return try await client.uploadFile(
                    file,
                    bucket: job.bucket,
                    key: job.key,
                    condition: condition,
                    attributes: attributes
                )
            } catch  where error.kind == .preconditionFailed && looks < 3 {
                looks += 1
                switch try await look(file, job: job, client: client, logger: logger) {
                case .stored(let object): return object
                case .send(let found): condition = found
                }
            }
        }
    }

    /// What a look at the key decided.
    private enum Look {
        /// The key holds the file's copy: the upload is done.
        case stored(UploadedObject)
        /// Send the file on this condition.
        case send(PutCondition)
    }

    private func look(
        _ file: LocalFile,
        job: UploadJob,
        client: S3Client,
        logger: Logger
    ) async throws(S3Error) -> Look {
        let before = try S3Error.reading { try file.status() }
        guard let object = try await client.headObject(bucket: job.bucket, key: job.key) else { return .send(.absent) }
        guard let sha256 = ObjectVerification.sha256(ofCopyOf: file, size: before.size, object: object) else {
            return .send(object.etag.isEmpty ? .always : .replacing(etag: object.etag))
        }
        try client.requireUnchanged(file, since: before, "while it was compared with the object")
        logger.notice(
            "the bucket already holds the file's copy (an earlier write whose answer was lost); not sent again",
            metadata: ["s3.key": "\(job.key)"]
        )
        return .stored(
            UploadedObject(
                bucket: job.bucket,
                key: job.key,
                etag: object.etag,
                sha256: sha256,
                versionID: object.versionID,
                size: before.size,
                mtime: before.mtime,
                partCount: 0,
                device: before.device,
                inode: before.inode
            )
        )
    }
}
