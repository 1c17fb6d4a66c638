import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// Aborts the multipart uploads a process left open in the bucket without the ledger ever learning of them.
///
/// A process killed between S3 creating a multipart upload and the ledger recording its id leaves an upload
/// that nothing resumes and whose parts are stored (and billed) until someone aborts it. This lists the open
/// uploads under the project's key prefix, keeps those that no ledger row owns (no `file_uploads` row records
/// the id, no `upload_parts` row sent a part of it: those resume or are aborted by their own file's next upload)
/// and that are at least `upload.abandoned_multipart_hours` old, aborts each and records it in
/// `multipart_aborts`.
package struct AbandonedUploads {
    package var config: FleetConfig
    package var context: S3Context
    package var logger: Logger

    package init(config: FleetConfig, context: S3Context, logger: Logger) {
        self.config = config
        self.context = context
        self.logger = logger
    }

    /// - Parameters:
    ///   - now: The moment the age is measured from.
    /// - Returns: how many uploads were aborted.
    /// - Throws: `LedgerError`; `S3Error` when the bucket cannot be listed or an upload cannot be aborted
    ///   (the ones aborted before stay recorded); `KeyTemplateError` for a template that cannot be used.
    @discardableResult
    package func abort(ledger: Ledger, projectID: Int64, deviceID: Int64?, now: Date = Date()) throws -> Int {
        let mapper = try KeyMapper(config: config)
        let prefix = mapper.template.listingPrefix(
            prefix: config.resolved.s3.prefix,
            device: config.resolved.device,
            project: config.project.name
        )
        let buckets = try mapper.bucket.map { [$0] } ?? ledger.storedBuckets(projectID: projectID)
        let hours = config.resolved.upload.abandonedMultipartHours
        let cutoff = Timestamp(now.addingTimeInterval(-hours * 3600))
        let holder = "\(ProcessInfo.processInfo.hostName):\(getpid())"
        let client = try context.client(logger: logger)
        var aborted = 0
        for bucket in buckets {
            let old = try client.listMultipartUploads(bucket: bucket, prefix: prefix).map {
                OpenMultipartUpload(bucket: bucket, key: $0.key, uploadID: $0.uploadID, initiated: $0.initiated)
            }.filter { upload in
                // An upload the listing gives no time for is taken as young, unless every age is old enough.
                hours == 0 || upload.initiated.map { $0 <= cutoff } ?? false
            }
            let owned = try ledger.ownedMultipartUploads(old)
            for upload in old where !owned.contains(upload.uploadID) {
                try client.abortMultipartUpload(bucket: bucket, key: upload.key, uploadID: upload.uploadID)
                try ledger.recordMultipartAbort(upload, projectID: projectID, deviceID: deviceID, holder: holder)
                aborted += 1
                logger.notice(
                    "aborted a multipart upload no ledger row owns",
                    metadata: [
                        "s3.bucket": "\(bucket)", "s3.key": "\(upload.key)", "upload.id": "\(upload.uploadID)",
                        "initiated": "\(upload.initiated.map(\.rfc3339) ?? "unknown")",
                    ]
                )
            }
        }
        return aborted
    }
}
