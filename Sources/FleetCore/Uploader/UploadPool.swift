import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// The moving parts of one run over a session's rows: the workers, the job source that feeds them from the
/// ledger, and the writer that records their outcomes in batches. `upload` starts one while it scans; `retry`
/// starts one per round.
package struct UploadPool {
    package let jobs: JobSource
    private let writer: ResultWriter
    private let group = DispatchGroup()
    private let state: RunState
    private let ledger: Ledger
    private let sessionID: Int64
    private let logger: Logger
    private let recordsAbandoned: Bool
    private let governor: ConcurrencyGovernor

    /// Opens the pool's connection (one, shared by the job source, the result writer and the multipart journal)
    /// and starts queues on `jobs` that keep `config.resolved.upload.workers` files in flight between them.
    ///
    /// - Parameters:
    ///   - ledger: The caller's connection, used at the end to record abandoned files.
    ///   - recordsAbandoned: When the store stays unreachable, record the session's files never tried as
    ///     failed (not for a process that joined the session: they are the opener's to record).
    ///   - connection: The pool's connection, when the caller opened it ahead (`InBackground`); by default
    ///     the pool opens it.
    ///   - makeJobs: The job source, given the pool's connection.
    package init(
        context: S3Context,
        config: FleetConfig,
        databaseURL: String,
        ledger: Ledger,
        session: (id: Int64, projectID: Int64, deviceID: Int64),
        state: RunState,
        progress: UploadProgress,
        logger: Logger,
        recordsAbandoned: Bool = true,
        connection: (() throws -> Ledger)? = nil,
        makeJobs: (SharedLedger) -> JobSource
    ) throws {
        let poolLedger = try connection?() ?? Ledger(url: databaseURL, logger: logger)
        poolLedger.logger = logger  // one opened ahead did not know the session yet
        let shared = SharedLedger(poolLedger)
        writer = ResultWriter(
            ledger: shared,
            sessionID: session.id,
            projectID: session.projectID,
            deviceID: session.deviceID,
            config: config,
            progress: progress,
            logger: logger
        )
        jobs = makeJobs(shared)
        self.state = state
        self.ledger = ledger
        sessionID = session.id
        self.logger = logger
        self.recordsAbandoned = recordsAbandoned
        writer.start()
        let journal = MultipartJournal(ledger: shared, projectID: session.projectID, logger: logger)
        governor = ConcurrencyGovernor(workers: config.resolved.upload.workers, progress: progress, logger: logger)
        jobs.keepAhead { [governor] in governor.level }
        let capacity = governor.capacity
        let queues = UploadPool.queueCount(inFlight: capacity)
        for index in 0..<queues {
            let worker = UploadWorker(
                index: index,
                queues: queues,
                lanes: capacity / queues + (index < capacity % queues ? 1 : 0),
                governor: governor,
                context: context,
                config: config,
                source: jobs,
                writer: writer,
                state: state,
                progress: progress,
                journal: journal,
                logger: logger
            )
            DispatchQueue(label: "fleet.upload.worker.\(index)").async(group: group) { worker.run() }
        }
    }

    /// Queues the workers' transfers are spread over: one per core, at most four (each carries hundreds of
    /// transfers; more threads would only compete with the server and the ledger for the cores).
    static func queueCount(inFlight: Int) -> Int {
        max(1, min(inFlight, 4, ProcessInfo.processInfo.activeProcessorCount))
    }

    /// Rows uploaded but not recorded (the ledger refused the result): see `ResultWriter.uploadedButUnrecorded`.
    package var uploadedButUnrecorded: [Int64] { writer.uploadedButUnrecorded }

    /// Waits for the workers, puts back what they never started, writes the last outcomes, and when the run
    /// gave up on an unreachable store, records the files it never tried as failed.
    ///
    /// - Throws: the writer's ledger error, if recording failed.
    package func finish() throws {
        group.wait()
        for job in jobs.drain() {
            writer.submit(UploadOutcome(job: job, status: .putBack, attempts: 0, startedAt: .now()))
        }
        try writer.finish()
        if recordsAbandoned {
            // The level `auto` settled on, or where it had got to when the run ended (a fixed number as is).
            let level = governor.settledLevel ?? governor.level
            try ledger.reconnecting { try ledger.recordConcurrency(sessionID: sessionID, level: level) }
        }
        guard state.abandoned, recordsAbandoned else { return }
        let reason = state.lastError.map { "\($0)" } ?? "the store was unreachable"
        let count = try ledger.abandonPendingFiles(
            sessionID: sessionID,
            errorClass: state.lastError?.kind.rawValue ?? "network",
            message: "not attempted: nothing uploaded for \(Int(state.giveUpAfter)) s (\(reason))"
        )
        logger.error(
            "gave up: nothing uploaded for \(Int(state.giveUpAfter)) s",
            metadata: ["files.abandoned": "\(count)"]
        )
    }
}
