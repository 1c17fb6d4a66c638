import FleetAWS
import FleetLedger
import Foundation
import Logging

/// One upload run of the agent, on its own thread: drop the files the ledger already records as stored, then
/// upload the rest as one session (with retry rounds and the trigger) and report which files are settled.
struct AgentRun: Sendable {
    struct Outcome: Sendable {
        var sessionID: Int64?
        var status: String
        var uploadedFiles = 0
        /// Bytes the session uploaded, and files that failed in it (for metrics).
        var uploadedBytes: Int64 = 0
        var failedFiles = 0
        /// Files the ledger already recorded as stored: no session row, nothing sent.
        var alreadyStored = 0
        /// Display paths of the files this run settled for good: uploaded, already stored, or refused for a
        /// reason another attempt cannot fix. The rest stay in the queue.
        var settled: Set<String> = []
    }

    var kind: AgentRunKind
    var files: [WalkedFile]
    var config: FleetConfig
    var configPath: String
    var databaseURL: String
    var environment: [String: String]
    var logger: Logger

    /// The run's connections: one for the stored lookup, closed before the session opens its two (the session's
    /// and the pool's), and one after it for the outcome, so a run never holds more than two.
    ///
    /// - Throws: when the session cannot start (ledger, credentials, bucket): the files stay queued.
    func perform(state: RunState) throws -> Outcome {
        var outcome = Outcome(status: "nothing to upload")
        let alreadyStored = try storedFiles()
        outcome.alreadyStored = alreadyStored.count
        outcome.settled = Set(alreadyStored.map { files[$0].displayPath })
        let remaining = files.indices.filter { !alreadyStored.contains($0) }.map { files[$0] }
        guard !remaining.isEmpty else { return outcome }

        var session = UploadSession(config: config, configPath: configPath, databaseURL: databaseURL, logger: logger)
        session.kind = kind.rawValue
        session.files = remaining
        session.environment = environment
        let trigger =
            config.trigger?.url != nil
            ? try TriggerOptions(settings: config.trigger, overrides: TriggerSettings()) : nil
        var cycle = UploadCycle(session: session, trigger: trigger, logger: logger)
        cycle.onRound = { [logger] round in
            let record = round.record
            logger.info(
                "retry round \(record.round): \(record.filesUploaded) uploaded, \(record.filesFailed) failed",
                metadata: ["attempted": "\(record.filesAttempted)"]
            )
        }
        let result = try cycle.run(state: state, progress: UploadProgress())
        let sessionID = result.upload.sessionID
        outcome.sessionID = sessionID
        let ledger = try Ledger(url: databaseURL, logger: logger)
        let record = try ledger.session(sessionID)
        outcome.status = record?.status.rawValue ?? result.upload.status.rawValue
        outcome.uploadedFiles = record?.totals.uploadedFiles ?? result.upload.totals.uploadedFiles
        outcome.uploadedBytes = record?.totals.uploadedBytes ?? result.upload.totals.uploadedBytes
        outcome.failedFiles = record?.totals.failedFiles ?? result.upload.totals.failedFiles
        outcome.settled.formUnion(try ledger.settledPaths(sessionID: sessionID))
        return outcome
    }

    /// Indices of the files the ledger already records as stored (same key, size and mtime: uploaded with a checksum, or imported from the old daemon's registry),
    /// asked on a connection of its own that is closed on return.
    private func storedFiles() throws -> Set<Int> {
        let ledger = try Ledger(url: databaseURL, logger: logger)
        let context = try S3Context(config: config, environment: environment)
        let projectID = try ledger.upsertProject(config, region: context.endpoint.region, endpoint: config.s3.endpoint)
        let placed = files.enumerated().compactMap { index, walked -> (Int, StoredCandidate)? in
            guard case .success(let placement) = walked.placement else { return nil }
            return (
                index,
                StoredCandidate(
                    bucket: placement.bucket,
                    key: placement.key,
                    size: walked.file.size,
                    mtime: walked.file.mtime
                )
            )
        }
        let stored = try ledger.storedMatches(projectID: projectID, placed.map(\.1), acceptingImported: true)
        var indices = Set<Int>()
        for (position, (index, _)) in placed.enumerated() where stored[position] { indices.insert(index) }
        return indices
    }
}
