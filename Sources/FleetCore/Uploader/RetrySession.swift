import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// What `retry` does, from the command line or `master once`.
package struct RetryOptions: Sendable {
    /// Also take permanent failures (after the user fixed permissions or credentials, say); never those whose
    /// key is wrong.
    package var includePermanent = false
    /// Run rounds with backoff between them until nothing is left, rounds run out, or every file is out of
    /// attempts; otherwise one round.
    package var auto = false
    /// Rounds at most with `auto`; nil: the session configuration's `retry.rounds`.
    package var rounds: Int?

    package init() {}
}

/// How a retry ended.
package struct RetrySummary: Sendable {
    package enum Ending: String, Sendable, Codable {
        /// Nothing was left to retry when it started.
        case nothingToRetry = "nothing_to_retry"
        /// Every file the rounds took is uploaded.
        case allUploaded = "all_uploaded"
        /// Files remain, but the rounds ran out (`--auto`) or the one round is over.
        case filesRemain = "files_remain"
        /// The files that remain have used up their attempts.
        case outOfAttempts = "out_of_attempts"
        case interrupted
    }
    /// One round as it ended: the ledger's record of it and what only the process that ran it knows.
    package struct Round: Sendable, Equatable {
        package var record: RetryRound
        /// Files the round took on but did not get to (it was interrupted).
        package var notAttempted: Int
    }
    package var session: SessionRecord
    package var rounds: [Round]
    package var ending: Ending
    /// Files a further retry would take (with the same options).
    package var remaining: Int
}

extension RetrySummary.Round: Encodable {
    /// The report's keys (`retry` converts them to snake case, `master once` keeps them); the duration is the
    /// ledger's, from `started_at` to `finished_at`.
    private enum CodingKeys: String, CodingKey {
        case round, attempted, uploaded, failed, durationSeconds, notAttempted
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(record.round, forKey: .round)
        try container.encode(record.filesAttempted, forKey: .attempted)
        try container.encode(record.filesUploaded, forKey: .uploaded)
        try container.encode(record.filesFailed, forKey: .failed)
        try container.encode(record.durationSeconds, forKey: .durationSeconds)
        try container.encode(notAttempted, forKey: .notAttempted)
    }
}

/// Re-attempts a finished session's failed files in the same parallel pool as `upload`, recording every
/// attempt: one round, or with `auto` rounds separated by exponential backoff.
///
/// The files are claimed with `FOR UPDATE SKIP LOCKED`, so two retries of one session never upload the same
/// file. A file that vanished since is recorded as a permanent failure (`file_missing`).
package struct RetrySession {
    package var databaseURL: String
    package var logger: Logger
    package var environment: [String: String] = ProcessInfo.processInfo.environment
    /// Overrides of the session's recorded configuration (`--workers`, `FLEET_*`).
    package var overrides: [ConfigOverride] = []
    package var claimBatch = 256
    /// Called when a round ends (per-round statistics on the terminal).
    package var onRound: (@Sendable (RetrySummary.Round) -> Void)?

    package init(databaseURL: String, logger: Logger) {
        self.databaseURL = databaseURL
        self.logger = logger
    }

    /// Runs the retry of `sessionID` with the configuration the session ran with (and `overrides`): its
    /// `retry` section sets the rounds, the backoff between them and the attempts a file may use.
    ///
    /// - Parameters:
    ///   - options: Which files, how many rounds.
    ///   - state: Stop requests (signals); each round has a give-up clock of its own.
    ///   - progress: Counters across all rounds, for a progress display.
    /// - Throws: `RetryError`, `ConfigError`, `LedgerError` or `S3Error` when the retry cannot start.
    package func run(
        sessionID: Int64,
        options: RetryOptions,
        state: RunState,
        progress: UploadProgress
    ) throws -> RetrySummary {
        let ledger = try Ledger(url: databaseURL, logger: logger)
        guard var session = try ledger.session(sessionID) else { throw RetryError.noSuchSession(sessionID) }
        if session.kind == "imported" { throw RetryError.imported(sessionID) }
        let config = try ledger.sessionConfig(session, overrides: overrides)
        let maxRounds = options.rounds ?? config.resolved.retry.rounds
        var logger = self.logger
        logger[metadataKey: "session.id"] = "\(sessionID)"
        if let deviceID = session.deviceID {
            let context = try S3Context(config: config, environment: environment)
            try Reconciler(
                context: context,
                logger: logger,
                concurrency: min(256, config.resolved.upload.threadWorkers)
            )
            .settleBeforeRun(ledger: ledger, deviceID: deviceID, projectID: session.projectID, config: config)
            session = try ledger.session(sessionID) ?? session
        }
        try takeOver(&session, ledger: ledger, logger: logger)
        // A later session (the agent's next run, another upload) may have stored some of these files since:
        // sending them again would upload them twice.
        let stored = try ledger.skipAlreadyStored(sessionID: sessionID)
        if stored > 0 {
            logger.notice("files stored since by another session: skipped", metadata: ["files": "\(stored)"])
        }

        let statuses = Ledger.retryableStatuses(includePermanent: options.includePermanent)
        let cap = options.auto ? config.resolved.retry.maxFileAttempts : nil
        // What the next round would take: counted before the first round and after each.
        var (remaining, remainingBytes) = try ledger.countRetryable(
            sessionID: sessionID,
            statuses: statuses,
            maxAttempts: cap
        )
        guard remaining > 0 else {
            return try summary(sessionID, ledger: ledger, rounds: [], ending: .nothingToRetry, remaining: 0)
        }
        let context = try S3Context(config: config, environment: environment)
        guard let deviceID = session.deviceID else { throw RetryError.noDevice(sessionID) }
        var generator = SystemRandomNumberGenerator()

        var rounds: [RetrySummary.Round] = []
        var destinationChecked = false
        var unreachableWaits = 0
        while remaining > 0, !state.stopRequested {
            if !destinationChecked {
                do {
                    // With --auto the rounds below wait out an outage; without it, the check rides out a blip.
                    try context.checkDestination(
                        bucket: config.destinationBucket,
                        logger: logger,
                        patience: options.auto ? .zero : .seconds(10)
                    )
                    destinationChecked = true
                } catch let error as S3Error where options.auto && error.isTransient {
                    // The outage the rounds are for may not be over: wait for it like for a round that failed.
                    unreachableWaits += 1
                    guard rounds.count + unreachableWaits < maxRounds else { break }
                    let wait = config.resolved.retry.roundBackoff.delay(
                        afterAttempt: unreachableWaits,
                        using: &generator
                    )
                    logger.warning(
                        "the store is unreachable (\(error.message)); trying again in \(Formatting.duration(wait))"
                    )
                    state.pause(wait)
                    continue
                }
            }
            let files = remaining
            let number = try ledger.startRetryRound(sessionID: sessionID)
            logger.notice("retry round \(number): \(files) files")
            progress.update {
                $0.plannedFiles += files
                $0.plannedBytes += remainingBytes
                $0.scanFinished = true
            }
            let before = progress.snapshot
            // Each round gets a fresh give-up clock: an outage that outlasted the last round may be over.
            let roundState = RunState(
                giveUpAfter: config.resolved.upload.giveUpAfterSeconds,
                transferGrace: config.resolved.upload.stopTimeoutSeconds,
                parent: state
            )
            let pool = try UploadPool(
                context: context,
                config: config,
                databaseURL: databaseURL,
                ledger: ledger,
                session: (sessionID, session.projectID, deviceID),
                state: roundState,
                progress: progress,
                logger: logger
            ) {
                JobSource.retry(
                    ledger: $0,
                    sessionID: sessionID,
                    batchSize: claimBatch,
                    state: roundState,
                    statuses: statuses,
                    maxAttempts: cap
                )
            }
            try pool.finish()
            let after = progress.snapshot
            let uploaded = after.uploadedFiles - before.uploadedFiles
            let failed = after.failedFiles - before.failedFiles
            let record = try ledger.finishRetryRound(
                sessionID: sessionID,
                round: number,
                attempted: uploaded + failed,
                uploaded: uploaded,
                failed: failed
            )
            let round = RetrySummary.Round(record: record, notAttempted: max(0, files - uploaded - failed))
            rounds.append(round)
            onRound?(round)
            (remaining, remainingBytes) = try ledger.countRetryable(
                sessionID: sessionID,
                statuses: statuses,
                maxAttempts: cap
            )
            guard options.auto, remaining > 0, rounds.count + unreachableWaits < maxRounds, !state.stopRequested
            else { break }
            // A round that gave up on the store checks it again before the next.
            if roundState.abandoned { destinationChecked = false }
            let wait = config.resolved.retry.roundBackoff.delay(
                afterAttempt: rounds.count + unreachableWaits,
                using: &generator
            )
            logger.notice("\(remaining) files left; next round in \(Formatting.duration(wait))")
            state.pause(wait)
        }

        let ending: RetrySummary.Ending
        if state.stopRequested {
            ending = .interrupted
        } else if remaining == 0 {
            let left = try ledger.countRetryable(sessionID: sessionID, statuses: statuses, maxAttempts: nil).0
            ending = left == 0 ? .allUploaded : .outOfAttempts
            remaining = left
        } else {
            ending = .filesRemain
        }
        return try summary(sessionID, ledger: ledger, rounds: rounds, ending: ending, remaining: remaining)
    }

    /// A session still marked running is taken over only when its process is gone: on this host, when its pid
    /// no longer exists; elsewhere, when its heartbeat is older than ten minutes. Files claimed by dead
    /// processes on this host go back to `pending`.
    private func takeOver(_ session: inout SessionRecord, ledger: Ledger, logger: Logger) throws {
        let host = ProcessInfo.processInfo.hostName
        if session.status == .running {
            let silentFor = Double(Timestamp.now().microseconds - session.heartbeatAt.microseconds) / 1_000_000
            let alive = session.hostname == host ? LocalProcess.exists(Int32(session.pid)) : silentFor < 600
            guard !alive else { throw RetryError.stillRunning(session, silentFor: silentFor) }
            logger.warning(
                "session \(session.id) was left running by a process that is gone; closing it as interrupted"
            )
        }
        let released = try ledger.releaseDeadClaims(sessionID: session.id, hostname: host, isAlive: LocalProcess.exists)
        if released > 0 {
            logger.notice("put back files claimed by a process that is gone", metadata: ["files": "\(released)"])
        }
        if session.status == .running {
            _ = try ledger.closeSession(
                session.id,
                status: .interrupted,
                errorMessage: "the process ended without closing the session"
            )
            session.status = .interrupted
        }
    }

    private func summary(
        _ sessionID: Int64,
        ledger: Ledger,
        rounds: [RetrySummary.Round],
        ending: RetrySummary.Ending,
        remaining: Int
    ) throws -> RetrySummary {
        // The session's status follows its files now: completed once nothing failed. Decided in the ledger in
        // one statement, so a retry of the same session finishing at the same moment cannot close it on totals
        // read before the other recorded its files.
        if !rounds.isEmpty { try ledger.closeRetriedSession(sessionID, interrupted: ending == .interrupted) }
        guard let session = try ledger.session(sessionID) else { throw RetryError.noSuchSession(sessionID) }
        return RetrySummary(session: session, rounds: rounds, ending: ending, remaining: remaining)
    }
}

/// Why a retry cannot start.
package enum RetryError: Error, CustomStringConvertible {
    case noSuchSession(Int64)
    case stillRunning(SessionRecord, silentFor: Double)
    case noDevice(Int64)
    case imported(Int64)

    package var description: String {
        switch self {
        case .noSuchSession(let id): "no session \(id) in the ledger"
        case .stillRunning(let session, let silentFor):
            "session \(session.id) is still running (pid \(session.pid) on \(session.hostname), last heartbeat "
                + "\(Formatting.duration(silentFor)) ago); retry it once it has finished"
        case .noDevice(let id): "session \(id) has no device recorded"
        case .imported(let id):
            "session \(id) was imported from the Data Uploader, which kept no file mtimes to retry from; run `upload` "
                + "of its directory instead: it skips what was uploaded and sends the rest"
        }
    }
}
