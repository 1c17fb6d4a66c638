import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// One upload queue: a `TransferLoop` on the queue's thread carrying `lanes` files at once. Each lane takes
/// claimed files, uploads each with retries, and hands the outcome to the writer; its requests wait on the loop,
/// not on the thread, so one thread keeps hundreds of requests in flight.
///
/// The lanes of a queue share one `S3Client` (its signing keys, its view of the store), used only by their
/// steps, which all run on the loop's thread. A large file's parts go out on the same loop, a few at once
/// (`ParallelMultipart`), while its lane waits.
///
/// A class: every async step of a lane holds the worker while it waits, and a reference is 8 bytes of each of a
/// thousand lanes' frames where a copy of the configuration would be kilobytes.
final class UploadWorker: Sendable {
    let index: Int
    /// Queues of the pool, this one included.
    let queues: Int
    /// The most files this queue uploads at once; how many of them may be in flight now is its share of the
    /// governor's level.
    let lanes: Int
    let governor: ConcurrencyGovernor
    let context: S3Context
    let config: FleetConfig
    let source: JobSource
    let writer: ResultWriter
    let state: RunState
    let progress: UploadProgress
    let journal: MultipartJournal
    let logger: Logger
    /// `upload.multipart_threshold_mb` in bytes, read once (the resolved configuration is a large value, and an
    /// async step that read it would keep it in its frame).
    private let multipartThresholdBytes: Int64

    init(
        index: Int,
        queues: Int,
        lanes: Int,
        governor: ConcurrencyGovernor,
        context: S3Context,
        config: FleetConfig,
        source: JobSource,
        writer: ResultWriter,
        state: RunState,
        progress: UploadProgress,
        journal: MultipartJournal,
        logger: Logger
    ) {
        self.index = index
        self.queues = queues
        self.lanes = lanes
        self.governor = governor
        self.context = context
        self.config = config
        self.source = source
        self.writer = writer
        self.state = state
        self.progress = progress
        self.journal = journal
        self.logger = logger
        multipartThresholdBytes = config.resolved.upload.multipartThresholdBytes
    }

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
        // libcurl counts the connections in use too: twice the lanes leaves room for a connection being replaced
        // while every lane has one, and closes the rest once fewer lanes are in flight. A large file's parts
        // share the loop, `part_concurrency` of them at once: room for one file's parts besides.
        loop.limitConnections(to: 2 * (lanes + config.resolved.upload.partConcurrency))
        var logger = self.logger
        logger[metadataKey: "worker"] = "\(index)"
        let client: S3Client
        do {
            client = try context.client(logger: logger)
        } catch {
            logger.error("cannot create an S3 client", metadata: ["error": "\(error)"])
            state.requestStop()
            return
        }
        client.shouldEnd = { [state] in state.transfersMustEnd }
        client.loop = loop
        let lanes = Lanes(loop: loop, client: Handed(client), claims: ClaimTurn(), gate: LaneGate())
        addLanes(lanes)
        loop.run()
    }

    /// Starts lanes up to the queue's share of the governor's level: a lane (its task and its client) exists
    /// only once the level has called for it, and stays, waiting at the gate, when the level goes down.
    private func addLanes(_ lanes: Lanes) {
        while lanes.gate.started < min(self.lanes, governor.share(of: queues, index: index)) {
            let lane = lanes.gate.started
            lanes.gate.started += 1
            lanes.loop.spawn { await self.runLane(lane, lanes) }
        }
    }

    private func runLane(_ lane: Int, _ lanes: Lanes) async {
        while true {
            await lanes.gate.enter(limit: governor.share(of: queues, index: index))
            let job: UploadJob
            do {
                guard let next = try await nextJob(loop: lanes.loop, claims: lanes.claims) else {
                    lanes.gate.leave(limit: governor.share(of: queues, index: index))
                    return
                }
                job = next
            } catch {
                lanes.gate.leave(limit: governor.share(of: queues, index: index))
                logger(lane).error("cannot claim files from the ledger", metadata: ["error": "\(error)"])
                state.requestStop()
                return
            }
            let outcome = await upload(job, lane: lane, client: lanes.client.value, loop: lanes.loop)
            writer.submit(outcome)
            governor.fileFinished()
            lanes.gate.leave(limit: governor.share(of: queues, index: index))
            addLanes(lanes)
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
    ///
    /// The steps that do not wait are functions of their own: what a lane's task keeps while it waits is its
    /// frame, and with a thousand lanes every byte of it counts a thousand times.
    func upload(_ job: UploadJob, lane: Int, client: S3Client, loop: TransferLoop) async -> UploadOutcome {
        let started = Timestamp.now()
        var attempts = 0
        // Whether an object an earlier attempt (of this run, or of the run that recorded the row failed) sent may
        // be in the bucket although no answer said so: then the bucket is asked before the file is sent again.
        var unsure = job.claimedFrom != "pending"
        while true {
            attempts += 1
            let error: S3Error
            do throws(S3Error) {
                let (uploaded, sentSize) = try await send(
                    job,
                    lane: lane,
                    client: client,
                    loop: loop,
                    lookFirst: unsure
                )
                return succeeded(job, uploaded, sentSize: sentSize, attempts: attempts, startedAt: started)
            } catch let failure {
                error = failure
            }
            if error.mayHaveTakenEffect { unsure = true }
            switch failed(job, error, lane: lane, attempts: attempts, startedAt: started) {
            case .retry(let wait):
                await loop.sleep(wait, wakeEarly: { [state] in state.shouldStop })
            case .done(let outcome, let abandonParts):
                if abandonParts { await self.abandonParts(job, lane: lane, loop: loop) }
                return outcome
            }
        }
    }

    /// One attempt at the file: a PutObject, or the parts of a large file; of its compressed copy for a file
    /// recorded to go up compressed. Returns the object as the ledger records the file, and the size sent when
    /// that was a copy.
    @inline(never)
    private func send(
        _ job: UploadJob,
        lane: Int,
        client: S3Client,
        loop: TransferLoop,
        lookFirst: Bool
    ) async throws(S3Error) -> (object: UploadedObject, sentSize: Int64?) {
        let file = try S3Error.reading { try LocalFile(pathBytes: job.path) }
        let body = try await self.body(for: job, file: file, loop: loop, logger: logger(lane))
        let uploaded: UploadedObject
        if try body.size >= multipartThresholdBytes {
            uploaded = try await sendInParts(body, job, lane: lane, client: client, loop: loop)
        } else {
            uploaded = try await putObject(
                body.file,
                job: job,
                client: client,
                lookFirst: lookFirst,
                attributes: body.attributes,
                logger: logger(lane)
            )
        }
        return try original(uploaded, body: body, file: file, client: client)
    }

    @inline(never)  // its frame only while a large file is sent
    private func sendInParts(
        _ body: Body,
        _ job: UploadJob,
        lane: Int,
        client: S3Client,
        loop: TransferLoop
    ) async throws(S3Error) -> UploadedObject {
        try await multipart(lane).upload(
            body.file,
            bucket: job.bucket,
            key: job.key,
            client: client,
            loop: loop,
            journaling: ParallelMultipart.Journaling(journal: journal, job: job),
            identity: body.identity,
            attributes: body.attributes
        )
    }

    @inline(never)
    private func multipart(_ lane: Int) -> ParallelMultipart {
        let settings = config.resolved.upload
        return ParallelMultipart(
            context: context,
            partSize: settings.partSizeBytes,
            concurrency: settings.partConcurrency,
            timeouts: HTTPTimeouts(),
            logger: logger(lane),
            stop: state
        )
    }

    /// The worker's logger, naming the lane.
    @inline(never)
    private func logger(_ lane: Int) -> Logger {
        var logger = self.logger
        logger[metadataKey: "worker"] = "\(index).\(lane)"
        return logger
    }

    @inline(never)  // as the steps below: not part of the waiting task's frame
    private func succeeded(
        _ job: UploadJob,
        _ uploaded: UploadedObject,
        sentSize: Int64?,
        attempts: Int,
        startedAt started: Timestamp
    ) -> UploadOutcome {
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
        outcome.sentSize = sentSize
        return outcome
    }

    /// What follows a failed attempt.
    private enum NextStep {
        case retry(after: Double)
        /// The file's outcome; `abandonParts` when parts earlier runs sent for it can never be completed now.
        case done(UploadOutcome, abandonParts: Bool)
    }

    @inline(never)
    private func failed(
        _ job: UploadJob,
        _ error: S3Error,
        lane: Int,
        attempts: Int,
        startedAt started: Timestamp
    ) -> NextStep {
        let settings = config.resolved.upload
        let logger = logger(lane)
        if error.signalsCongestion { governor.congestion() }
        let givingUp = error.isTransient && state.recordTransientFailure(error)
        if error.isTransient, attempts < settings.maxAttempts, !givingUp, !state.stopRequested {
            var generator = SystemRandomNumberGenerator()
            let wait = settings.backoff.delay(afterAttempt: attempts, using: &generator)
            progress.update { $0.retries += 1 }
            logger.notice(
                "retry \(attempts)/\(settings.maxAttempts) in \(String(format: "%.1f", wait)) s",
                metadata: [
                    "s3.key": "\(job.key)", "error.class": "\(error.kind.rawValue)", "error": "\(error.message)",
                ]
            )
            return .retry(after: wait)
        }
        progress.update { $0.failedFiles += 1 }
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
        return .done(outcome, abandonParts: !error.isTransient && job.size >= settings.multipartThresholdBytes)
    }

    /// Aborts the multipart uploads earlier runs recorded for the file (on another thread: they are blocking
    /// requests and ledger writes).
    private func abandonParts(_ job: UploadJob, lane: Int, loop: TransferLoop) async {
        let (multipart, context, journal, logger) = (multipart(lane), context, journal, logger(lane))
        await loop.offload {
            guard let client = try? context.client(logger: logger) else { return }
            multipart.abandonRecorded(
                bucket: job.bucket,
                key: job.key,
                client: client,
                journaling: ParallelMultipart.Journaling(journal: journal, job: job)
            )
        }
    }
}

/// What the lanes of one queue share, all used on the queue's thread: its loop and client, whose turn it is to
/// claim, and how many lanes may have a file in flight.
private struct Lanes: Sendable {
    var loop: TransferLoop
    var client: Handed<S3Client>
    var claims: ClaimTurn
    var gate: LaneGate
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

/// A value handed to one other thread while the task that owns it waits for that thread to finish with it, or
/// shared by tasks that all run on one transfer loop's thread.
struct Handed<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
