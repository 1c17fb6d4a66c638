import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// What `upload` reports at the end (and prints with `--json`).
package struct UploadSummary: Sendable, Codable {
    package var sessionID: Int64
    package var status: SessionStatus
    package var project: String
    package var device: String
    package var bucket: String?
    package var prefix: String
    package var totals: SessionTotals
    package var durationSeconds: Double
    package var retries: Int
    package var message: String?
    /// Round trips this process made to the ledger while the session ran (every connection): they grow with
    /// the number of batches, not of files.
    package var ledgerRoundTrips: Int

    package var filesPerSecond: Double { durationSeconds > 0 ? Double(totals.uploadedFiles) / durationSeconds : 0 }
    package var bytesPerSecond: Double { durationSeconds > 0 ? Double(totals.uploadedBytes) / durationSeconds : 0 }
}

/// One upload session from start to end: record the project, configuration and session; scan every source
/// into the ledger while workers claim and upload what is recorded; write outcomes in batches; close the
/// session with its totals and status.
package struct UploadSession {
    package var config: FleetConfig
    package var configPath: String?
    package var databaseURL: String
    package var kind = "upload"
    /// The files to record, instead of scanning the sources (the agent passes the files that became ready).
    package var files: [WalkedFile]?
    package var environment: [String: String] = ProcessInfo.processInfo.environment
    package var logger: Logger
    /// Files recorded per COPY batch while scanning; the first batch is `claimBatch` files, so that the
    /// workers have files to claim one round trip after the scan starts, not after 2,000 files were walked.
    package var recordBatch = 2000
    package var claimBatch = 256

    package init(config: FleetConfig, configPath: String?, databaseURL: String, logger: Logger) {
        self.config = config
        self.configPath = configPath
        self.databaseURL = databaseURL
        self.logger = logger
    }

    /// Runs the session.
    ///
    /// - Throws: `ConfigError`, `LedgerError` or `S3Error` when the run cannot start (the environment is
    ///   unusable: no session is opened); once the session is open, problems end up in its status instead.
    package func run(state: RunState, progress: UploadProgress) throws -> UploadSummary {
        let roundTripsBefore = PGConnection.roundTripsInProcess
        let context = try S3Context(config: config, environment: environment)
        let mapper = try KeyMapper(config: config)
        // The bucket is asked while the ledger connects. Both answers are waited for, so that a ledger that
        // cannot be reached is still the error shown, and no check is left running when the process exits.
        let destination = InBackground { [config, logger] in
            try context.checkDestination(bucket: config.destinationBucket, logger: logger)
        }
        let opened = Result { try Ledger(url: databaseURL, logger: logger) }
        let checked = Result { try destination.value() }
        let ledger = try opened.get()
        try checked.get()
        // The workers' connection is opened while the session is set up, not after.
        let poolConnection = InBackground { [databaseURL, logger] in try Ledger(url: databaseURL, logger: logger) }
        if let bandwidth = context.bandwidth {
            logger.info("upload bandwidth capped", metadata: ["max_bandwidth": "\(bandwidth.schedule)"])
        }

        let projectID = try ledger.upsertProject(config, region: context.endpoint.region, endpoint: config.s3.endpoint)
        let deviceID = try ledger.upsertDevice(
            name: config.resolved.device,
            hostname: ProcessInfo.processInfo.hostName,
            agentVersion: FleetVersion.number
        )
        try Reconciler(context: context, logger: logger, concurrency: min(256, config.resolved.upload.threadWorkers))
            .settleBeforeRun(
                ledger: ledger,
                deviceID: deviceID,
                projectID: projectID,
                config: config
            )
        let configID = try ledger.recordConfig(projectID: projectID, config: config, sourcePath: configPath)
        let sources = config.resolved.sources
        let sessionID = try ledger.openSession(
            kind: kind,
            projectID: projectID,
            deviceID: deviceID,
            configID: configID,
            localDirectory: sources.map(\.path).joined(separator: ", "),
            bucket: mapper.bucket,
            prefix: config.resolved.s3.prefix
        )
        var sessionLogger = logger
        sessionLogger[metadataKey: "session.id"] = "\(sessionID)"
        sessionLogger.info("session opened", metadata: ["project": "\(config.project.name)"])

        let started = Date()
        var failure: String?
        var unreadableDirectories: [ScanProblem] = []
        var uploadedButUnrecorded: [Int64] = []
        let reconciler = Reconciler(
            context: context,
            logger: sessionLogger,
            concurrency: min(256, config.resolved.upload.threadWorkers)
        )
        do {
            try ledger.registerWorker(
                sessionID: sessionID,
                role: .opener,
                workers: config.resolved.upload.threadWorkers
            )
            let pool = try UploadPool(
                context: context,
                config: config,
                databaseURL: databaseURL,
                ledger: ledger,
                session: (sessionID, projectID, deviceID),
                state: state,
                progress: progress,
                logger: sessionLogger,
                connection: poolConnection.value
            ) {
                // Processes may join the session (`upload --join`): it ends once the files they hold are recorded.
                JobSource(ledger: $0, sessionID: sessionID, batchSize: claimBatch, state: state) { ledger in
                    try reconciler.othersStillAtWork(sessionID: sessionID, ledger: ledger)
                }
            }
            if !config.resolved.upload.compareWithBucket { pool.jobs.release() }

            do {
                unreadableDirectories = try record(
                    mapper: mapper,
                    ledger: ledger,
                    sessionID: sessionID,
                    projectID: projectID,
                    state: state,
                    progress: progress,
                    recorded: pool.jobs.filesRecorded
                )
                if config.resolved.upload.compareWithBucket {
                    try skipWhatTheBucketHas(
                        context: context,
                        mapper: mapper,
                        ledger: ledger,
                        sessionID: sessionID,
                        projectID: projectID,
                        progress: progress
                    )
                }
            } catch is CancellationError {
                // Interrupted while scanning: what was recorded so far is uploaded or put back.
            } catch {
                failure = "\(error)"
                state.requestStop()
            }
            defer { uploadedButUnrecorded = pool.uploadedButUnrecorded }
            try ledger.reconnecting { try ledger.markScanFinished(sessionID) }
            pool.jobs.finishScan()
            pool.jobs.release()
            try pool.finish()
            if config.resolved.upload.deleteAfterUpload, failure == nil {
                deleteStoredSkippedFiles(
                    ledger: ledger,
                    session: (sessionID, projectID, deviceID),
                    state: state,
                    logger: sessionLogger
                )
            }
        } catch {
            failure = failure ?? "\(error)"
        }

        // Rows this process still claims were never recorded either way: put them back for `retry` or the next
        // run. (Files other processes hold are theirs: after a stop or a failure they record them themselves.)
        // Files uploaded whose result the ledger refused stay claimed: the next run finds them in the bucket.
        try ledger.reconnecting {
            try ledger.releaseOwnClaims(sessionID: sessionID, uploaded: uploadedButUnrecorded, logger: sessionLogger)
        }
        let status: SessionStatus
        let interrupted = state.stopRequested && failure == nil
        let totals = try ledger.reconnecting { try ledger.sessionTotals(sessionID) }
        if failure != nil {
            status = .failed
        } else if interrupted {
            status = .interrupted
        } else {
            status =
                totals.failedFiles > 0 || totals.unfinishedFiles > 0 || !unreadableDirectories.isEmpty
                ? .completedWithErrors : .completed
        }
        // Files in a directory the scan could not read were never seen, so no row says they are missing: the
        // session's message does, and the session does not count as complete.
        let message = failure ?? Self.unreadableMessage(unreadableDirectories)
        let closed = try ledger.reconnecting {
            try ledger.closeSession(sessionID, status: status, errorMessage: message, totals: totals)
        }
        try ledger.reconnecting { try ledger.leaveSession(sessionID) }
        sessionLogger.info("session closed", metadata: ["status": "\(status.rawValue)"])
        return UploadSummary(
            sessionID: sessionID,
            status: status,
            project: config.project.name,
            device: config.resolved.device,
            bucket: mapper.bucket,
            prefix: config.resolved.s3.prefix,
            totals: closed,
            durationSeconds: Date().timeIntervalSince(started),
            retries: progress.snapshot.retries,
            message: message,
            ledgerRoundTrips: PGConnection.roundTripsInProcess - roundTripsBefore
        )
    }

    /// `2 directories could not be read, their files were not uploaded: '/data/a': Permission denied, …`.
    static func unreadableMessage(_ problems: [ScanProblem]) -> String? {
        guard let first = problems.first else { return nil }
        let count =
            problems.count == 1 ? "1 directory could not be read" : "\(problems.count) directories could not be read"
        return "\(count), their files were not uploaded: \(first.message)\(problems.count > 1 ? ", …" : "")"
    }

    /// Scans every source and records the files in batches (each batch becomes claimable when committed).
    ///
    /// - Returns: the directories the scan could not read.
    private func record(
        mapper: KeyMapper,
        ledger: Ledger,
        sessionID: Int64,
        projectID: Int64,
        state: RunState,
        progress: UploadProgress,
        recorded: () -> Void
    ) throws -> [ScanProblem] {
        let now = Timestamp.now()
        var unreadable: [ScanProblem] = []
        var batch: [PlannedFile] = []
        batch.reserveCapacity(recordBatch)
        var batchLimit = min(claimBatch, recordBatch)
        func flush() throws {
            batchLimit = recordBatch
            let skipped = try ledger.reconnecting {
                try ledger.recordFiles(batch, sessionID: sessionID, projectID: projectID)
            }
            let problems = batch.filter { $0.errorClass != nil }.count
            let planned = batch.filter { $0.errorClass == nil }
            progress.update {
                $0.skippedFiles += skipped
                $0.failedFiles += problems
                $0.plannedFiles += planned.count - skipped
                $0.plannedBytes += planned.reduce(0) { $0 + $1.size }
            }
            batch.removeAll(keepingCapacity: true)
            recorded()
        }
        func accept(_ walked: WalkedFile) throws {
            if state.stopRequested { throw CancellationError() }
            let file = walked.file
            var planned = PlannedFile(
                source: walked.source,
                localPath: walked.displayPath,
                relativePath: PathText.escaped(file.relativePath),
                pathBytes: String(validating: walked.fullPath, as: UTF8.self) == nil ? walked.fullPath : nil,
                bucket: mapper.bucket ?? "",
                key: "",
                size: file.size,
                mtime: file.mtime
            )
            planned.codec = walked.compression?.recorded
            switch walked.placement {
            case .success(let placement):
                planned.bucket = placement.bucket
                planned.key = placement.key
            case .failure(let error):
                planned.key = planned.relativePath
                planned.errorClass = "invalid_key"
                planned.errorMessage = error.description
            }
            if !file.readable {
                planned.errorClass = "file_unreadable"
                planned.errorMessage = "\(walked.displayPath): permission denied"
            }
            batch.append(planned)
            if batch.count >= batchLimit { try flush() }
        }
        if let files {
            for walked in files { try accept(walked) }
        } else {
            _ = try SourceWalk(config: config, mapper: mapper, logger: logger).run(
                now: now,
                problems: { problem in
                    if problem.kind == .unreadableDirectory { unreadable.append(problem) }
                },
                accept: accept
            )
        }
        try flush()
        progress.update { $0.scanFinished = true }
        return unreadable
    }

    /// With `delete_after_upload`: files skipped because an earlier run uploaded them (and died before deleting
    /// them) are deleted too, once their content is checked against the stored object's checksum. A ledger that
    /// cannot record it leaves them for the next run; the session's outcome does not change.
    private func deleteStoredSkippedFiles(
        ledger: Ledger,
        session: (id: Int64, projectID: Int64, deviceID: Int64),
        state: RunState,
        logger: Logger
    ) {
        do {
            try SkippedFileDeletion(ledger: ledger, session: session, config: config, logger: logger).run(state: state)
        } catch {
            logger.error(
                "not deleting files an earlier run uploaded: the ledger cannot record their deletion",
                metadata: ["error": "\(error)"]
            )
        }
    }

    /// With `compare_with_bucket`: list the destination and skip files already there with the same size.
    private func skipWhatTheBucketHas(
        context: S3Context,
        mapper: KeyMapper,
        ledger: Ledger,
        sessionID: Int64,
        projectID: Int64,
        progress: UploadProgress
    ) throws {
        guard let bucket = mapper.bucket else { return }
        let client = try context.client(logger: logger)
        let prefix = mapper.template.listingPrefix(
            prefix: config.resolved.s3.prefix,
            device: config.resolved.device,
            project: config.project.name
        )
        var listing: [(String, String, Int64)] = []
        try client.listAllObjects(bucket: bucket, prefix: prefix) { objects in
            listing += objects.map { (bucket, $0.key, $0.size) }
        }
        let skipped = try ledger.skipFilesInBucket(sessionID: sessionID, listing: listing)
        progress.update {
            $0.skippedFiles += skipped
            $0.plannedFiles -= skipped
        }
        logger.info(
            "compared with the bucket",
            metadata: ["objects.listed": "\(listing.count)", "files.skipped": "\(skipped)"]
        )
    }
}
