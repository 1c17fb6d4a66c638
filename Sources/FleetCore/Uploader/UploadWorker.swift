import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// One upload thread: takes claimed files, uploads each with retries, hands the outcome to the writer.
///
/// Owns its `S3Client` (and so its libcurl handle) for the whole run; nothing it holds crosses threads.
struct UploadWorker {
    var index: Int
    var context: S3Context
    var config: FleetConfig
    var source: JobSource
    var writer: ResultWriter
    var state: RunState
    var progress: UploadProgress
    var journal: MultipartJournal
    var logger: Logger

    func run() {
        var logger = self.logger
        logger[metadataKey: "worker"] = "\(index)"
        let client: S3Client
        do {
            client = try context.client(logger: logger)
            client.shouldEnd = { [state] in state.transfersMustEnd }
        } catch {
            logger.error("cannot create an S3 client", metadata: ["error": "\(error)"])
            state.requestStop()
            return
        }
        var generator = SystemRandomNumberGenerator()
        while true {
            let job: UploadJob
            do {
                guard let next = try source.next() else { return }
                job = next
            } catch {
                logger.error("cannot claim files from the ledger", metadata: ["error": "\(error)"])
                state.requestStop()
                return
            }
            writer.submit(upload(job, client: client, logger: logger, generator: &generator))
        }
    }

    /// Uploads one file, retrying transient failures with backoff, and says how it ended.
    func upload(
        _ job: UploadJob,
        client: S3Client,
        logger: Logger,
        generator: inout SystemRandomNumberGenerator
    )
        -> UploadOutcome
    {
        let started = Timestamp.now()
        let settings = config.resolved.upload
        var attempts = 0
        let multipart = ParallelMultipart(
            context: context,
            partSize: settings.partSizeBytes,
            concurrency: settings.partConcurrency,
            timeouts: client.timeouts,
            logger: logger,
            stop: state
        )
        let journaling = ParallelMultipart.Journaling(journal: journal, job: job)
        // Whether an object an earlier attempt (of this run, or of the run that recorded the row failed) sent may
        // be in the bucket although no answer said so: then the bucket is asked before the file is sent again.
        var unsure = job.claimedFrom != "pending"
        while true {
            attempts += 1
            do throws(S3Error) {
                let file = try S3Error.reading { try LocalFile(pathBytes: job.path) }
                let size = try S3Error.reading { try file.status() }.size
                let uploaded: UploadedObject
                if size >= settings.multipartThresholdBytes {
                    uploaded = try multipart.upload(
                        file,
                        bucket: job.bucket,
                        key: job.key,
                        client: client,
                        journaling: journaling
                    )
                } else {
                    uploaded = try putObject(file, job: job, client: client, lookFirst: unsure, logger: logger)
                }
                state.recordSuccess()
                progress.update {
                    $0.uploadedFiles += 1
                    $0.uploadedBytes += uploaded.size
                }
                logger.debug("uploaded", metadata: ["s3.key": "\(job.key)", "file.size": "\(uploaded.size)"])
                var outcome = UploadOutcome(job: job, status: .uploaded, attempts: attempts, startedAt: started)
                outcome.etag = uploaded.etag
                outcome.sha256 = uploaded.sha256
                outcome.versionID = uploaded.versionID
                outcome.multipartUploadID = uploaded.multipartUploadID
                outcome.size = uploaded.size
                outcome.mtime = uploaded.mtime
                outcome.device = uploaded.device
                outcome.inode = uploaded.inode
                return outcome
            } catch {
                if error.mayHaveTakenEffect { unsure = true }
                let givingUp = error.isTransient && state.recordTransientFailure(error)
                if error.isTransient, attempts < settings.maxAttempts, !givingUp, !state.stopRequested {
                    let wait = settings.backoff.delay(afterAttempt: attempts, using: &generator)
                    progress.update { $0.retries += 1 }
                    logger.notice(
                        "retry \(attempts)/\(settings.maxAttempts) in \(String(format: "%.1f", wait)) s",
                        metadata: [
                            "s3.key": "\(job.key)", "error.class": "\(error.kind.rawValue)",
                            "error": "\(error.message)",
                        ]
                    )
                    state.pause(wait)
                    continue
                }
                progress.update { $0.failedFiles += 1 }
                if !error.isTransient, job.size >= settings.multipartThresholdBytes {
                    // Parts earlier runs sent for this file can never be completed now.
                    multipart.abandonRecorded(bucket: job.bucket, key: job.key, client: client, journaling: journaling)
                }
                logger.warning(
                    "\(error.isTransient ? "failed" : "permanent failure"): \(error.message)",
                    metadata: [
                        "s3.key": "\(job.key)", "error.class": "\(error.kind.rawValue)", "attempts": "\(attempts)",
                    ]
                )
                var outcome = UploadOutcome(
                    job: job,
                    status: error.isTransient ? .failed : .permanentFailure,
                    attempts: attempts,
                    startedAt: started
                )
                outcome.errorClass = error.kind.rawValue
                outcome.errorMessage = error.description
                outcome.httpStatus = error.httpStatus
                return outcome
            }
        }
    }
}
