import Foundation
import Logging
import Synchronization

/// Uploads one large file in parts sent by several connections at once.
///
/// One sequential read computes every part's SHA-256 and the whole file's; then `concurrency` threads, each
/// with its own client, send parts as S3 verifies each against its checksum. A failure aborts the upload so
/// no part is left behind.
package struct ParallelMultipart {
    var context: S3Context
    var partSize: Int64
    var concurrency: Int
    var timeouts: HTTPTimeouts
    var logger: Logger

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
        client: S3Client
    ) throws(S3Error)
        -> UploadedObject
    {
        let before = try file.status()
        let whole = SHA256()
        var digests: [[UInt8]] = []
        var offset: Int64 = 0
        while offset < before.size {
            let length = min(partSize, before.size - offset)
            digests.append(try file.sha256(offset: offset, length: length, also: whole))
            offset += length
        }
        try client.requireUnchanged(file, since: before, "while its checksums were computed")
        let uploadID = try client.createMultipartUpload(bucket: bucket, key: key)
        let parts = Mutex<[UploadedPart?]>(Array(repeating: nil, count: digests.count))
        let next = Mutex(0)
        let firstError = Mutex<S3Error?>(nil)
        let group = DispatchGroup()
        let (descriptor, size, partSize, context, timeouts, logger) = (
            file.descriptor, before.size, partSize, context, timeouts, logger
        )
        let digestList = digests
        for lane in 0..<min(concurrency, digests.count) {
            DispatchQueue(label: "fleet.multipart.\(lane)").async(group: group) {
                do throws(S3Error) {
                    let laneClient = try context.client(logger: logger, timeouts: timeouts)
                    while firstError.withLock({ $0 == nil }) {
                        let index = next.withLock { value -> Int in
                            defer { value += 1 }
                            return value
                        }
                        guard index < digestList.count else { return }
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
                partCount: finished.count
            )
        } catch {
            do {
                try client.abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID)
            } catch let abortError {
                logger.warning(
                    "could not abort multipart upload",
                    metadata: ["s3.key": "\(key)", "error": "\(abortError)"]
                )
            }
            throw error
        }
    }
}
