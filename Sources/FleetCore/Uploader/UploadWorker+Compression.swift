import FleetAWS
import FleetLedger
import FleetSystem
import Logging

extension UploadWorker {
    /// What one attempt sends for a file: the file itself, or a compressed copy of it made for the attempt.
    struct Body {
        /// The bytes sent: the file, or the copy's unnamed temporary file.
        var file: LocalFile
        var copy: CompressedCopy?

        var attributes: ObjectAttributes { copy.map(Compression.attributes(of:)) ?? .plain }
        /// The file the object stands for, when it is a copy (multipart uploads are journaled under it).
        var identity: LocalFile.Status? { copy?.original }
        /// The size of what is sent.
        var size: Int64 {
            get throws(S3Error) {
                if let copy { return copy.size }
                return try S3Error.reading { try file.status() }.size
            }
        }
    }

    /// The file as it is, or, for a file recorded to go up compressed, a copy compressed on a thread of its own
    /// (the loop's transfers go on meanwhile). The copy is made again for every attempt; it is the same bytes
    /// each time (`ZstdCompressor`), so a retried or resumed multipart upload finds its parts.
    func body(for job: UploadJob, file: LocalFile, loop: TransferLoop, logger: Logger) async throws(S3Error) -> Body {
        guard let compression = Compression(recorded: job.codec) else { return Body(file: file) }
        let opened = Handed(file)
        let state = state
        // Ended by a stop as a transfer is: once the stop's grace for transfers in flight is over.
        let made = await loop.offload { () -> Result<Handed<CompressedCopy>, S3Error> in
            Result { () throws(S3Error) -> Handed<CompressedCopy> in
                Handed(
                    try S3Error.reading {
                        try CompressedCopy(of: opened.value, level: compression.level) { state.transfersMustEnd }
                    }
                )
            }
        }
        let copy = try made.get().value
        logger.debug(
            "compressed",
            metadata: ["s3.key": "\(job.key)", "file.size": "\(copy.original.size)", "sent.size": "\(copy.size)"]
        )
        return Body(file: copy.file, copy: copy)
    }

    /// `uploaded`, the object sent for `body`, as the ledger records the file: for a copy, the original's size,
    /// mtime, device, inode and SHA-256, once the original is checked unchanged since it was compressed, and the
    /// object's size beside them.
    func original(
        _ uploaded: UploadedObject,
        body: Body,
        file: LocalFile,
        client: S3Client
    ) throws(S3Error) -> (object: UploadedObject, sentSize: Int64?) {
        guard let copy = body.copy else { return (uploaded, nil) }
        try client.requireUnchanged(file, since: copy.original, "while its compressed copy was sent")
        var object = uploaded
        object.sha256 = copy.originalSHA256.hexString
        object.size = copy.original.size
        object.mtime = copy.original.mtime
        object.device = copy.original.device
        object.inode = copy.original.inode
        return (object, copy.size)
    }
}
