import FleetAWS
import FleetLedger
import Foundation
import Logging

/// What a process that joined a session did (`upload --join`, printed at the end, or as JSON).
package struct JoinSummary: Sendable, Codable {
    package var sessionID: Int64
    /// The session's status when this process left (`running` while the opener still works).
    package var sessionStatus: SessionStatus
    package var project: String
    package var worker: String
    package var uploadedFiles: Int
    package var uploadedBytes: Int64
    package var failedFiles: Int
    package var retries: Int
    package var durationSeconds: Double
    package var interrupted: Bool
}

/// Why a process cannot join a session.
package enum JoinError: Error, CustomStringConvertible {
    case noSuchSession(Int64)
    case notRunning(SessionRecord)
    case noDevice(Int64)

    package var description: String {
        switch self {
        case .noSuchSession(let id): "no session \(id) in the ledger"
        case .notRunning(let session):
            "session \(session.id) is \(session.status.rawValue), not running: nothing to join"
                + (session.totals.failedFiles + session.totals.unfinishedFiles > 0
                    ? " (retry --session \(session.id) re-attempts its failed files)" : "")
        case .noDevice(let id): "session \(id) has no device recorded"
        }
    }
}

/// A further process on a running session (`upload --join SESSION`), on this machine or another that sees the
/// same paths: it claims the session's pending files with `FOR UPDATE SKIP LOCKED` alongside the process that
/// opened it, uploads them with the configuration the session runs with, and leaves once the scan is over and
/// nothing is left to claim. The opener closes the session when the files every process holds are recorded.
package struct JoinSession {
    package var databaseURL: String
    package var logger: Logger
    package var environment: [String: String] = ProcessInfo.processInfo.environment
    /// Overrides of the session's recorded configuration (`--workers`, `FLEET_*`).
    package var overrides: [ConfigOverride] = []
    package var claimBatch = 256

    package init(databaseURL: String, logger: Logger) {
        self.databaseURL = databaseURL
        self.logger = logger
    }

    /// Joins `sessionID` and uploads until the session has nothing left to claim, it ends, or `state` stops.
    ///
    /// - Throws: `JoinError`, `ConfigError`, `LedgerError` or `S3Error` when it cannot join.
    package func run(sessionID: Int64, state: RunState, progress: UploadProgress) throws -> JoinSummary {
        let ledger = try Ledger(url: databaseURL, logger: logger)
        guard let session = try ledger.session(sessionID) else { throw JoinError.noSuchSession(sessionID) }
        guard session.status == .running else { throw JoinError.notRunning(session) }
        guard let deviceID = session.deviceID else { throw JoinError.noDevice(sessionID) }
        let config = try ledger.sessionConfig(session, overrides: overrides)
        let context = try S3Context(config: config, environment: environment)
        try context.checkDestination(bucket: config.destinationBucket, logger: logger)
        var logger = self.logger
        logger[metadataKey: "session.id"] = "\(sessionID)"

        let started = Date()
        try ledger.registerWorker(sessionID: sessionID, role: .joined, workers: config.resolved.upload.threadWorkers)
        logger.info("joined the session", metadata: ["worker": "\(ClaimHolder.thisProcess)"])
        var failure: (any Error)?
        var uploadedButUnrecorded: [Int64] = []
        do {
            let pool = try UploadPool(
                context: context,
                config: config,
                databaseURL: databaseURL,
                ledger: ledger,
                session: (sessionID, session.projectID, deviceID),
                state: state,
                progress: progress,
                logger: logger,
                recordsAbandoned: false
            ) {
                JobSource.joining(
                    ledger: $0,
                    sessionID: sessionID,
                    batchSize: claimBatch,
                    state: state,
                    afterScan: config.resolved.upload.compareWithBucket
                )
            }
            defer { uploadedButUnrecorded = pool.uploadedButUnrecorded }
            try pool.finish()
        } catch {
            failure = error
        }
        // What this process still holds was never recorded: it goes back for the opener (or `retry`); files
        // uploaded whose result the ledger refused stay claimed, for the opener to find in the bucket.
        try ledger.releaseOwnClaims(sessionID: sessionID, uploaded: uploadedButUnrecorded, logger: logger)
        try ledger.leaveSession(sessionID)
        if let failure { throw failure }

        // The opener may have closed the session while this process recorded its last files: count them in.
        guard var now = try ledger.session(sessionID) else { throw JoinError.noSuchSession(sessionID) }
        if now.status != .running {
            now.totals = try ledger.closeSession(
                sessionID,
                status: now.status,
                errorMessage: now.errorMessage,
                totals: now.totals
            )
        }
        let snapshot = progress.snapshot
        return JoinSummary(
            sessionID: sessionID,
            sessionStatus: now.status,
            project: session.project,
            worker: ClaimHolder.thisProcess,
            uploadedFiles: snapshot.uploadedFiles,
            uploadedBytes: snapshot.uploadedBytes,
            failedFiles: snapshot.failedFiles,
            retries: snapshot.retries,
            durationSeconds: Date().timeIntervalSince(started),
            interrupted: state.stopRequested
        )
    }
}
