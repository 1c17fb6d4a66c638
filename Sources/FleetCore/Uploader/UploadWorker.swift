import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// One upload queue: a `TransferLoop` on the queue's thread carrying `lanes` files at once. Each lane takes
/// claimed files, uploads each with retries, and hands the outcome to the writer; its requests wait on the loop,
/// not on the thread, so one thread keeps hundreds of requests in flight.
///
/// Each lane owns its `S3Client`, used only by the lane's steps, which all run on the loop's thread. A large
/// file's parts go out on threads of their own (`ParallelMultipart`) while the lane waits.
struct UploadWorker: Sendable {
    var index: Int
    /// Queues of the pool, this one included.
    var queues: Int
    /// The most files this queue uploads at once; how many of them may be in flight now is its share of the
    /// governor's level.
    var lanes: Int
    var governor: ConcurrencyGovernor
    var context: S3Context
    var config: FleetConfig
    var source: JobSource
    var writer: ResultWriter
    var state: RunState
    var progress: UploadProgress
    var journal: MultipartJournal
    var logger: Logger

    /// Runs the queue's loop until every lane has run out of files (or the run stops).
    func run() {
        let loop: TransferLoop
        do {
            loop = try TransferLoop()
        } catch {
            logger.error("cannot create a transfer loop", metadata: ["error": "\(error)"])
            state.requestStop()
            return
        }
        loop.caBundle = context.endpoint.caBundle
        let claims = ClaimTurn()
        let gate = LaneGate()
        addLanes(loop: loop, claims: claims, gate: gate)
        loop.run()
    }

    /// Starts lanes up to the queue's share of the governor's level: a lane (its task and its client) exists
    /// only once the level has called for it, and stays, waiting at the gate, when the level goes down.
    private func addLanes(loop: TransferLoop, claims: ClaimTurn, gate: LaneGate) {
        while gate.started < min(lanes, governor.share(of: queues, index: index)) {
            let lane = gate.started
            gate.started += 1
            loop.spawn { await self.runLane(lane, loop: loop, claims: claims, gate: gate) }
        }
    }

    private func runLane(_ lane: Int, loop: TransferLoop, claims: ClaimTurn, gate: LaneGate) async {
        var logger = self.logger
        logger[metadataKey: "worker"] = "\(index).\(lane)"
        let client: S3Client
        do {
            client = try context.client(logger: logger)
            client.shouldEnd = { [state] in state.transfersMustEnd }
            client.loop = loop
        } catch {
            logger.error("cannot create an S3 client", metadata: ["error": "\(error)"])
            state.requestStop()
            return
        }
        var generator = SystemRandomNumberGenerator()
        while true {
            await gate.enter(limit: governor.share(of: queues, index: index))
            let job: UploadJob
            do {
                guard let next = try await nextJob(loop: loop, claims: claims) else {
                    gate.leave(limit: governor.share(of: queues, index: index))
                    return
                }
                job = next
            } catch {
                gate.leave(limit: governor.share(of: queues, index: index))
                logger.error("cannot claim files from the ledger", metadata: ["error": "\(error)"])
                state.requestStop()
                return
            }
            let outcome = await upload(job, client: client, loop: loop, logger: logger, generator: &generator)
            writer.submit(outcome)
            governor.fileFinished()
            gate.leave(limit: governor.share(of: queues, index: index))
            addLanes(loop: loop, claims: claims, gate: gate)
        }
    }

    /// The next claimed file: from the files the source claimed ahead, else (the claim ahead has not returned,
    /// or the scan has recorded nothing new) one lane of the queue at a time asks the source on a thread of its
    /// own, so the loop's transfers go on, while the others wait for what it finds.
    private func nextJob(loop: TransferLoop, claims: ClaimTurn) async throws -> UploadJob? {
        while true {
            if let job = source.buffered() { return job }
            if claims.exhausted { return nil }
            guard !claims.taken else {
                await claims.waitForTurn()
                continue
            }
            claims.taken = true
            defer { claims.pass() }
            let source = self.source
            while true {
                let claim = await loop.offload { Result { try source.claim() } }
                switch try claim.get() {
                case .job(let job): return job
                case .done:
                    claims.exhausted = true
                    return nil
                case .later: await loop.sleep(0.02)  // the turn is kept: the others wait for this lane's batch
                }
            }
        }
    }

    /// Uploads one file, retrying transient failures with backoff, and says how it ended.
    func upload(
        _ job: UploadJob,
        client: S3Client,
        loop: TransferLoop,
        logger: Logger,
        generator: inout SystemRandomNumberGenerator
    ) async
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
                let body = try await self.body(for: job, file: file, loop: loop, logger: logger)
                let uploaded: UploadedObject
                if try body.size >= settings.multipartThresholdBytes {
                    let opened = Handed(body.file)
                    let (identity, attributes) = (body.identity, body.attributes)
                    let (context, shouldEnd, timeouts) = (context, client.shouldEnd, client.timeouts)
                    uploaded = try await loop.offload { () -> Result<UploadedObject, S3Error> in
                        Result { () throws(S3Error) -> UploadedObject in
                            let client = try context.client(logger: logger, timeouts: timeouts)
                            client.shouldEnd = shouldEnd
                            return try multipart.upload(
                                opened.value,
                                bucket: job.bucket,
                                key: job.key,
                                client: client,
                                journaling: journaling,
                                identity: identity,
                                attributes: attributes
                            )
                        }
                    }.get()
                } else {
                    uploaded = try await putObject(
                        body.file,
                        job: job,
                        client: client,
                        lookFirst: unsure,
                        attributes: body.attributes,
                        logger: logger
                    )
                }
                let (object, sentSize) = try original(uploaded, body: body, file: file, client: client)
                state.recordSuccess()
                progress.update {
                    $0.uploadedFiles += 1
                    $0.uploadedBytes += object.size
                }
                logger.debug("uploaded", metadata: ["s3.key": "\(job.key)", "file.size": "\(object.size)"])
                var outcome = UploadOutcome(job: job, status: .uploaded, attempts: attempts, startedAt: started)
                outcome.etag = object.etag
                outcome.sha256 = object.sha256
                outcome.versionID = object.versionID
                outcome.multipartUploadID = object.multipartUploadID
                outcome.size = object.size
                outcome.mtime = object.mtime
                outcome.device = object.device
                outcome.inode = object.inode
                outcome.sentSize = sentSize
                return outcome
            } catch {
                if error.mayHaveTakenEffect { unsure = true }
                if error.signalsCongestion { governor.congestion() }
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
                    await loop.sleep(wait, wakeEarly: { [state] in state.shouldStop })
                    continue
                }
                progress.update { $0.failedFiles += 1 }
                if !error.isTransient, job.size >= settings.multipartThresholdBytes {
                    // Parts earlier runs sent for this file can never be completed now.
                    let context = context
                    await loop.offload {
                        guard let client = try? context.client(logger: logger) else { return }
                        multipart.abandonRecorded(
                            bucket: job.bucket,
                            key: job.key,
                            client: client,
                            journaling: journaling
                        )
                    }
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

/// Whether a lane of one queue is asking the ledger for the next batch, and the lanes waiting for it to
/// finish; used on the queue's thread only.
private final class ClaimTurn: @unchecked Sendable {
    var taken = false
    /// The source said there is nothing left: the other lanes end without asking again.
    var exhausted = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func waitForTurn() async {
        await withCheckedContinuation { waiting.append($0) }
    }

    /// The lane asking is done: the waiting lanes look at the batch it claimed.
    func pass() {
        taken = false
        let woken = waiting
        waiting.removeAll()
        for lane in woken { lane.resume() }
    }
}

/// How many of one queue's lanes may have a file in flight: lanes past the limit wait in `enter` until a file
/// finishes and the limit (the queue's share of the governor's level) leaves room. Used on the queue's thread
/// only.
private final class LaneGate: @unchecked Sendable {
    /// Lanes started so far.
    var started = 0
    private var inside = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func enter(limit: Int) async {
        if inside < limit, waiting.isEmpty {
            inside += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave(limit: Int) {
        inside -= 1
        while inside < limit, !waiting.isEmpty {
            inside += 1
            waiting.removeFirst().resume()
        }
    }
}

/// A value handed to one other thread while the task that owns it waits for that thread to finish with it.
struct Handed<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
