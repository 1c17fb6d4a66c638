import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging
import Synchronization

/// The vehicle agent (`master run`): watches the sources, waits until each file is stable, uploads on a
/// schedule or at once inside operational hours, applies the deletion policies and reports a heartbeat, until
/// asked to stop.
///
/// One thread (the caller's) runs the loop: file events, stability, heartbeat, deletions. The decisions are
/// `AgentStateMachine`'s: the loop feeds it the time, the ready queue and what happened, and performs the
/// actions it returns. Uploads run on a queue of their own, one run at a time, each a ledger session (kind
/// `startup`, `immediate` or `scheduled`, `AgentRunKind`) followed by retry rounds and the trigger
/// (`UploadCycle`). Files that become ready during a
/// run wait for the next one. The ledger is the memory: a restart scans the sources again and skips what
/// ledger records, after reconciling what a killed predecessor left `uploading`.
package final class Agent {
    package var configPath: String
    package var overrides: [ConfigOverride]
    package private(set) var config: FleetConfig
    /// `config` with its defaults applied.
    private var settings: ResolvedConfig
    package let databaseURL: String
    package let clock: any AgentClock
    package let control: AgentControl
    package let logger: Logger
    package var environment = ProcessInfo.processInfo.environment
    /// Called after each reload attempt and each run, for systemd's notify protocol and tests.
    package var onNotify: (String) -> Void = { _ in }
    package let hostname = ProcessInfo.processInfo.hostName

    /// The decisions: this loop performs what it asks for and tells it what happened.
    private var machine: AgentStateMachine

    // Configuration-derived state.
    private var mapper: KeyMapper
    private var sources: [SourceSettings] = []
    private var roots: [[UInt8]] = []
    private var rules: [ScanRules] = []

    // Detection.
    private var tracker: StabilityTracker
    private var watcher: FileWatcher?
    private var watchedRoots: [Int] = []

    // Runs.
    private var running: RunningUpload?
    private var lastUploadAt: Date?
    /// Files an import queued for this device (`master import-state --queue`), by path, taken by the first scan
    /// with a ledger: each row is forgotten once a run settles its file.
    private var importedQueue: Set<String> = []
    private var importedQueueTaken = false

    // The ledger, as the loop sees it. The loop holds no connection between its actions: each one (connect,
    // reconcile, heartbeat, a deletion policy, a rescan's lookups) opens one and closes it when done, so an
    // idle agent holds no server backend and a thousand vehicles do not keep a thousand connections open.
    // Runs open their own. `ledgerKnown`: project and device were looked up and the ledger answered last time.
    private var ledgerKnown = false
    private var projectID: Int64 = 0
    private var deviceID: Int64 = 0
    private var generator = SystemRandomNumberGenerator()
    /// CloudWatch metrics (`metrics.cloudwatch`), when enabled; started by `run()`.
    private var metrics: MetricsPublisher?

    /// - Parameter config: the configuration `configPath` and `overrides` gave (already validated).
    package init(
        configPath: String,
        overrides: [ConfigOverride],
        config: FleetConfig,
        databaseURL: String,
        clock: any AgentClock = SystemClock(),
        control: AgentControl,
        logger: Logger
    ) throws {
        self.configPath = configPath
        self.overrides = overrides
        self.config = config
        settings = config.resolved
        self.databaseURL = databaseURL
        self.clock = clock
        self.control = control
        self.logger = logger
        mapper = try KeyMapper(config: config)
        tracker = StabilityTracker(stabilitySeconds: settings.agent.stabilitySeconds)
        machine = AgentStateMachine(settings: AgentStateMachine.Settings(config: config), now: clock.now())
        try derive(from: config)
    }

    /// Runs until `control.requestStop()`. In-flight uploads then get `agent.stop_timeout_seconds` to finish;
    /// after that they are abandoned (their rows stay `uploading` and the next start reconciles them).
    package func run() {
        logger.info(
            "agent started",
            metadata: [
                "device": "\(settings.device)",
                "sources": "\(sources.map { $0.name ?? "" }.joined(separator: ","))",
                "stability_seconds": "\(settings.agent.stabilitySeconds)",
                "sources.keeping_files":
                    "\(sources.filter { $0.allowDeletion == false }.map { $0.name ?? "" }.joined(separator: ","))",
            ]
        )
        metrics = startMetrics()
        let now = clock.now()
        let first = machine.start(now: now)
        startWatching()
        perform(first, now: now)
        onNotify("READY=1")

        while !control.stopRequested {
            if control.takeReload() { reload() }
            let tick = max(0.05, min(1.0, settings.agent.stabilitySeconds / 4))
            handle(watcher?.poll(timeout: tick) ?? idle(tick))
            let now = clock.now()
            promoteStableFiles(now: now)
            collectFinishedRun(now: now)
            // The machine asks for one step at a time where the next depends on an outcome (connect, then
            // reconcile, then run): ask again at the same moment until it has nothing more.
            var actions = machine.tick(now: now, queue: tracker)
            while !actions.isEmpty {
                perform(actions, now: now)
                actions = machine.tick(now: now, queue: tracker)
            }
        }
        onNotify("STOPPING=1")
        stop()
    }

    /// A number in 0…1 for the machine's backoff waits.
    private func jitter() -> Double { Double.random(in: 0...1, using: &generator) }

    /// Performs the machine's actions in order and feeds back their outcomes.
    private func perform(_ actions: [AgentAction], now: Date) {
        for action in actions {
            switch action {
            case .rescan(let reason):
                rescan(reason, now: now)
            case .connect:
                connect(now: now)
            case .reconcile:
                reconcile(now: now)
            case .startRun(let plan):
                start(plan)
            case .noFilesReady(let kind):
                logger.info("\(kind) upload: nothing ready")
            case .sendHeartbeat, .runDeletion:
                housekeeping(action, now: now)
            }
        }
    }

    // MARK: - Configuration

    /// Derives the loop's own state from `new` (keys, sources, scan rules, stability time); throws when a key
    /// template cannot be built.
    ///
    /// - Returns: whether the sources or the scan rules changed.
    @discardableResult
    private func derive(from new: FleetConfig) throws -> Bool {
        mapper = try KeyMapper(config: new)
        let resolved = new.resolved
        let sourcesChanged = resolved.sources != sources || new.scan != config.scan
        config = new
        settings = resolved
        sources = resolved.sources
        roots = sources.map { Array($0.path.utf8).trailingSlashRemoved }
        let walk = SourceWalk(config: new, mapper: mapper, logger: logger)
        rules = sources.map { source in
            var rule = walk.rules(for: source)
            rule.minAgeSeconds = 0
            rule.maxAgeDays = nil
            return rule
        }
        tracker.stabilitySeconds = resolved.agent.stabilitySeconds
        return sourcesChanged
    }

    /// SIGHUP: read the file again; a configuration that does not load leaves the running one in place.
    private func reload() {
        onNotify("RELOADING=1")
        defer { onNotify("READY=1") }
        do {
            let new = try ConfigLoader.load(path: configPath, overrides: overrides)
            guard new != config else {
                logger.info("configuration reloaded: unchanged")
                return
            }
            if new.project != config.project || new.device != config.device || new.s3 != config.s3 {
                ledgerKnown = false  // project or device may differ: look them up again
                machine.ledgerReset()
            }
            let sourcesChanged = try derive(from: new)
            let now = clock.now()
            perform(
                machine.configApplied(
                    AgentStateMachine.Settings(config: new),
                    now: now,
                    sourcesChanged: sourcesChanged
                ),
                now: now
            )
            logger.notice("configuration reloaded", metadata: ["config.hash": "\(new.hash.prefix(12))"])
        } catch {
            logger.error("configuration not reloaded; keeping the running one", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Detection

    private func startWatching() {
        watcher = nil
        watchedRoots = sources.indices.filter { FileManager.default.isReadableDirectory(sources[$0].path) }
        for index in sources.indices where !watchedRoots.contains(index) {
            logger.warning(
                "source directory missing; watching it once it exists",
                metadata: ["source": "\(sources[index].name ?? "")", "file.path": "\(sources[index].path)"]
            )
        }
        guard !watchedRoots.isEmpty else { return }
        do {
            watcher = try FileWatcher(
                roots: watchedRoots.map { sources[$0].path },
                followSymlinks: settings.scan.followSymlinks,
                logger: logger
            )
        } catch {
            logger.error("cannot watch the sources; relying on rescans", metadata: ["error": "\(error)"])
        }
    }

    private func idle(_ seconds: Double) -> [FileWatcher.Event] {
        Thread.sleep(forTimeInterval: seconds)
        return []
    }

    private func handle(_ events: [FileWatcher.Event]) {
        guard !events.isEmpty else { return }
        let now = clock.now()
        for event in events {
            switch event {
            case .changed(let path):
                guard let file = sourceFile(at: path) else { continue }
                if let version = FileVersion.current(at: path, followSymlinks: settings.scan.followSymlinks) {
                    // A file older than scan.max_age_days that only had its attributes touched (chmod, chown,
                    // a source coming back) is not new: the age limit holds for events as for scans.
                    if !tracker.knows(file, version), version.mtime < ageCutoff(now) { continue }
                    tracker.observe(file, version, now: now)
                } else {
                    tracker.forget(file)
                }
            case .removed(let path):
                if let file = sourceFile(at: path) { tracker.forget(file) }
            case .rescanNeeded(let reason):
                logger.notice("file events may have been missed; rescanning", metadata: ["reason": "\(reason)"])
                machine.rescanRequested()
            }
        }
    }

    /// The source file at a full path, when the path is inside a source and its rules admit it.
    private func sourceFile(at path: [UInt8]) -> SourceFile? {
        for index in roots.indices {
            let root = roots[index]
            guard path.count > root.count + 1, path.starts(with: root), path[root.count] == UInt8(ascii: "/") else {
                continue
            }
            let relative = Array(path[(root.count + 1)...])
            return rules[index].filter.admits(relative) ? SourceFile(source: index, relativePath: relative) : nil
        }
        return nil
    }

    /// Walks every source: files not known yet are observed (those modified more than two minutes ago as
    /// settled), files known but gone are forgotten. Only files at most `scan.max_age_days` old are taken up.
    /// When the sources changed, detection starts afresh first.
    private func rescan(_ reason: AgentAction.RescanReason, now: Date) {
        if reason == .sourcesChanged {
            tracker = StabilityTracker(stabilitySeconds: settings.agent.stabilitySeconds)
            importedQueueTaken = false  // the new tracker takes the imported queue again
            startWatching()
        } else if watchedRoots.count
            != sources.indices.filter({ FileManager.default.isReadableDirectory(sources[$0].path) }).count
        {
            startWatching()
        }
        // The ledger says which files earlier runs uploaded before they are queued: after a restart the files on
        // disk are remembered as handled (16 bytes each), not held whole until a run finds them stored.
        if !ledgerKnown, reason == .startup { connect(now: now) }
        // One connection for the whole walk (its lookups go 5,000 files a round trip), closed when it ends.
        var lookup = StoredLookup(ledger: ledgerKnown ? try? openLedger() : nil, projectID: projectID)
        let stamp = Timestamp(now)
        let cutoff = ageCutoff(now).microseconds
        var newlyReady: [SourceFile] = []
        var counts = (found: 0, taken: 0, stored: 0)
        var complete = false
        tracker.beginScan()
        if !importedQueueTaken { importedQueueTaken = takeImportedQueue(now: now, into: &newlyReady) }
        defer {
            counts.stored += lookup.flush(into: &tracker, newlyReady: &newlyReady, now: now, logger: logger)
            tracker.endScan(complete: complete)
            FreedMemory.release()
            machine.scanFinished(reason, newlyReady: newlyReady, now: now)
            logger.info(
                "\(reason): \(counts.found) files, \(counts.taken) recent enough",
                metadata: [
                    "queue.files": "\(tracker.queue.files)", "settling": "\(tracker.settlingCount)",
                    "handled": "\(tracker.handledCount)", "stored.found": "\(counts.stored)",
                    "complete": "\(complete)",
                ]
            )
        }
        for index in sources.indices where FileManager.default.isReadableDirectory(sources[index].path) {
            let compressionRule = CompressionRule(sources[index])
            let scanner = Scanner(
                root: sources[index].path,
                rules: rules[index],
                followSymlinks: settings.scan.followSymlinks
            )
            do {
                _ = try scanner.run(now: stamp) { scanned in
                    let file = SourceFile(source: index, relativePath: scanned.relativePath)
                    let version = FileVersion(size: scanned.size, mtime: scanned.mtime)
                    let take = scanned.mtime.microseconds >= cutoff
                    let settled =
                        Double(stamp.microseconds - scanned.mtime.microseconds) / 1_000_000
                        >= StabilityTracker.settledAge
                    counts.found += 1
                    if take { counts.taken += 1 }
                    let outcome = tracker.scanned(
                        file,
                        version,
                        take: take,
                        settled: settled,
                        now: now,
                        holdingUnknown: lookup.isActive
                    )
                    switch outcome {
                    case .noted: break
                    case .ready: newlyReady.append(file)
                    case .unknown:
                        guard
                            let placement = try? CompressionRule.placing(
                                mapper.place(
                                    source: sources[index].name ?? "",
                                    relativePath: scanned.relativePath,
                                    mtime: scanned.mtime
                                ),
                                by: compressionRule,
                                relativePath: scanned.relativePath
                            )
                        else {
                            // No key: queued, and the run records why it cannot be uploaded.
                            if tracker.scannedUnknown(file, version, settled: settled, now: now) {
                                newlyReady.append(file)
                            }
                            return
                        }
                        lookup.add(file, version, settled: settled, placement: placement)
                        if lookup.isFull {
                            counts.stored += lookup.flush(
                                into: &tracker,
                                newlyReady: &newlyReady,
                                now: now,
                                logger: logger
                            )
                        }
                    }
                }
            } catch {
                logger.warning(
                    "cannot scan a source",
                    metadata: ["source": "\(sources[index].name ?? "")", "error": "\(error)"]
                )
                return  // an incomplete scan must not forget files
            }
        }
        complete = true
    }

    /// Takes the files an import queued for this device into the queue, whatever their age (a file excluded by
    /// the scan rules, outside the sources or gone is forgotten): the rows stay until a run settles the file.
    ///
    /// - Returns: whether the ledger answered (else the next scan asks again).
    private func takeImportedQueue(now: Date, into newlyReady: inout [SourceFile]) -> Bool {
        guard ledgerKnown, let ledger = try? openLedger() else { return false }
        let queued: [QueuedFile]
        do {
            queued = try ledger.queuedFiles(deviceID: deviceID)
        } catch {
            logger.warning("cannot read the imported queue; the next scan asks again", metadata: ["error": "\(error)"])
            return false
        }
        guard !queued.isEmpty else { return true }
        var gone: [String] = []
        for entry in queued {
            let path = Array(entry.localPath.utf8)
            guard let file = sourceFile(at: path),
                let version = FileVersion.current(at: path, followSymlinks: settings.scan.followSymlinks)
            else {
                gone.append(entry.localPath)
                continue
            }
            importedQueue.insert(entry.localPath)
            let age = Double(Timestamp(now).microseconds - version.mtime.microseconds) / 1_000_000
            if tracker.observe(file, version, now: now, settled: age >= StabilityTracker.settledAge) {
                newlyReady.append(file)
            }
        }
        if !gone.isEmpty { _ = try? ledger.forgetQueuedFiles(deviceID: deviceID, paths: gone) }
        logger.notice(
            "took the files an import queued",
            metadata: ["files": "\(importedQueue.count)", "gone_or_outside_sources": "\(gone.count)"]
        )
        return true
    }

    /// Forgets the imported queue's rows of files a run settled.
    private func forgetSettledImports(_ settled: Set<String>) {
        let done = importedQueue.intersection(settled)
        guard !done.isEmpty, let ledger = try? openLedger() else { return }
        do {
            try ledger.forgetQueuedFiles(deviceID: deviceID, paths: Array(done))
            importedQueue.subtract(done)
        } catch {
            logger.warning(
                "cannot forget settled files of the imported queue; the next start finds them stored",
                metadata: ["error": "\(error)"]
            )
        }
    }

    /// Files modified before this are left alone unless already known (`scan.max_age_days`, default 3).
    private func ageCutoff(_ now: Date) -> Timestamp {
        Timestamp(microseconds: Timestamp(now).microseconds - Int64(settings.agent.scanMaxAgeDays * 86_400 * 1_000_000))
    }

    private func promoteStableFiles(now: Date) {
        let promoted = tracker.promote(now: now) { file in
            FileVersion.current(at: fullPath(of: file), followSymlinks: settings.scan.followSymlinks)
        }
        guard !promoted.isEmpty else { return }
        logger.debug("files ready", metadata: ["files": "\(promoted.count)"])
        machine.filesReady(promoted, now: now)
    }

    private func fullPath(of file: SourceFile) -> [UInt8] {
        roots[file.source] + [UInt8(ascii: "/")] + file.relativePath
    }

    // MARK: - Runs

    private func start(_ plan: AgentRunPlan) {
        // Transfers in flight are ended in time for their outcome to be recorded before the agent stops waiting.
        let grace = min(settings.upload.stopTimeoutSeconds, settings.agent.stopTimeoutSeconds * 0.75)
        let run = RunningUpload(
            plan: plan,
            state: RunState(giveUpAfter: settings.upload.giveUpAfterSeconds, transferGrace: grace)
        )
        var walked: [WalkedFile] = []
        walked.reserveCapacity(plan.files.count)
        let compressionRules = sources.map(CompressionRule.init)
        for entry in plan.files {
            let path = fullPath(of: entry.file)
            let name = sources[entry.file.source].name ?? ""
            let placement: Result<Placement, KeyError>
            do throws(KeyError) {
                placement = .success(
                    try mapper.place(source: name, relativePath: entry.file.relativePath, mtime: entry.version.mtime)
                )
            } catch {
                placement = .failure(error)
            }
            let readable = path.withCPath { access($0, R_OK) } == 0
            var file = WalkedFile(
                source: name,
                file: ScannedFile(
                    relativePath: entry.file.relativePath,
                    size: entry.version.size,
                    mtime: entry.version.mtime,
                    readable: readable
                ),
                fullPath: path,
                displayPath: PathText.escaped(path),
                placement: placement
            )
            file.compress(by: compressionRules[entry.file.source])
            walked.append(file)
        }
        logger.info("\(plan.kind) upload of \(plan.files.count) files")
        let job = AgentRun(
            kind: plan.kind,
            files: walked,
            config: config,
            configPath: configPath,
            databaseURL: databaseURL,
            environment: environment,
            logger: logger
        )
        running = run
        DispatchQueue(label: "fleet.agent.run").async {
            let result = Result { try job.perform(state: run.state) }
            run.finished.withLock { $0 = result }
        }
    }

    /// When the run in progress has ended: mark what it settled, log, and tell the machine which files it left.
    private func collectFinishedRun(now: Date) {
        guard let run = running, let result = run.finished.withLock({ $0 }) else { return }
        running = nil
        // The run's workers freed what they held; hand it back rather than keep the run's peak while idle.
        defer { FreedMemory.release() }
        let plan = run.plan
        switch result {
        case .success(let outcome):
            // After a reload that changed the sources the run's indices name other files; the tracker was rebuilt
            // from a rescan, and files the run settled are recognised as stored by the next one.
            var left: Set<SourceFile> = []
            for entry in plan.files where machine.isCurrent(plan) {
                if outcome.settled.contains(PathText.escaped(fullPath(of: entry.file))) {
                    tracker.markHandled(entry.file, entry.version)
                } else if tracker.readyVersion(of: entry.file) == entry.version {
                    left.insert(entry.file)
                }
            }
            machine.runSucceeded(left: left, now: now, jitter: jitter())
            if !importedQueue.isEmpty { forgetSettledImports(outcome.settled) }
            if outcome.uploadedFiles > 0 { lastUploadAt = clock.now() }
            metrics?.record(
                uploadedBytes: outcome.uploadedBytes,
                files: outcome.uploadedFiles,
                failures: outcome.failedFiles
            )
            logger.info(
                "\(plan.kind) upload finished",
                metadata: [
                    "session.id": "\(outcome.sessionID.map(String.init) ?? "-")",
                    "status": "\(outcome.status)", "files.uploaded": "\(outcome.uploadedFiles)",
                    "files.already_stored": "\(outcome.alreadyStored)", "queue.files": "\(tracker.queue.files)",
                ]
            )
        case .failure(let error):
            let wait = machine.runFailed(now: now, jitter: jitter())
            logger.error(
                "\(plan.kind) upload could not run; trying again in \(Int(wait)) s",
                metadata: ["error": "\(error)"]
            )
        }
    }

    // MARK: - Ledger, heartbeat, deletions

    /// A connection for one action; closed when the caller lets go of it.
    private func openLedger() throws -> Ledger { try Ledger(url: databaseURL, logger: logger) }

    /// Looks up the project and device (creating them the first time), on a connection closed again at once.
    private func connect(now: Date) {
        do {
            let connection = try openLedger()
            let context = try S3Context(config: config, environment: environment)
            projectID = try connection.upsertProject(
                config,
                region: context.endpoint.region,
                endpoint: config.s3.endpoint
            )
            deviceID = try connection.upsertDevice(
                name: settings.device,
                hostname: hostname,
                agentVersion: FleetVersion.number
            )
            ledgerKnown = true
            if machine.connectFailures > 0 { logger.notice("ledger reachable again") }
            machine.ledgerConnected()
        } catch {
            ledgerFailed(error, now: now)
        }
    }

    /// Settles what a dead process (or a run of this one that failed) left `uploading`, before the next run, and
    /// aborts the multipart uploads abandoned in the bucket (at start and daily). An S3 problem while settling
    /// holds back runs only: heartbeat and deletions go on, and it is tried again after a backoff of seconds
    /// that grows while S3 stays out of reach. An abort that fails is only a warning.
    private func reconcile(now: Date) {
        guard ledgerKnown else { return machine.notPerformed(.reconcile, now: now) }
        do {
            let ledger = try openLedger()
            let context = try S3Context(config: config, environment: environment)
            let reconciler = Reconciler(
                context: context,
                logger: logger,
                concurrency: min(256, settings.upload.threadWorkers)
            )
            _ = try reconciler.run(ledger: ledger, deviceID: deviceID, hostname: hostname, includeOwn: true)
            try reconciler.abortAbandonedUploads(
                ledger: ledger,
                projectID: projectID,
                deviceID: deviceID,
                config: config
            )
            machine.reconciled(now: now)
        } catch let error as LedgerError {
            ledgerFailed(error, now: now)
        } catch {
            let wait = machine.reconciliationFailed(now: now, jitter: jitter())
            logger.warning(
                "cannot check what an earlier run left in flight; uploads wait",
                metadata: ["error": "\(error)", "retry.seconds": "\(Int(wait.rounded(.up)))"]
            )
        }
    }

    /// Marks the ledger unreachable and lets the machine schedule the next attempt with backoff. While there is
    /// no ledger, nothing is deleted: no deletion without the ledger confirming the upload.
    private func ledgerFailed(_ error: any Error, now: Date) {
        ledgerKnown = false
        let wait = machine.ledgerLost(now: now, jitter: jitter())
        let failures = machine.connectFailures
        let level: Logger.Level = failures == 1 || failures % 10 == 0 ? .error : .debug
        logger.log(
            level: level,
            "ledger unavailable; detecting files, not deleting any; next attempt in \(Int(wait)) s",
            metadata: ["error": "\(error)", "attempts": "\(failures)"]
        )
    }

    /// The heartbeat or a deletion policy, on a connection of its own closed when it is done; when the ledger
    /// went away earlier in this round, the machine is told so and asks again once it is back.
    private func housekeeping(_ action: AgentAction, now: Date) {
        guard ledgerKnown else { return machine.notPerformed(action, now: now) }
        do {
            let ledger = try openLedger()
            let policies = DeletionPolicies(
                config: config,
                ledger: ledger,
                projectID: projectID,
                deviceID: deviceID,
                logger: logger
            )
            switch action {
            case .sendHeartbeat:
                let queue = tracker.queue
                if let metrics, let disk = fullestDisk() { metrics.record(diskUsagePercent: disk.usedPercent) }
                try ledger.recordHeartbeat(
                    deviceID: deviceID,
                    DeviceHeartbeat(
                        disk: fullestDisk(),
                        queueFiles: queue.files,
                        queueBytes: queue.bytes,
                        agentVersion: FleetVersion.number,
                        lastUploadAt: lastUploadAt
                    )
                )
            case .runDeletion(.afterUpload): _ = try policies.afterUpload(now: now)
            case .runDeletion(.age): _ = try policies.ageBased(now: now)
            case .runDeletion(.emergency): _ = try policies.emergency(now: now)
            case .rescan, .connect, .reconcile, .startRun, .noFilesReady: break
            }
        } catch {
            ledgerFailed(error, now: now)
        }
    }

    /// The fullest file system among the sources'.
    private func fullestDisk() -> DiskUsage? {
        sources.compactMap { try? DiskUsage.of(path: $0.path) }.max { $0.usedPercent < $1.usedPercent }
    }

    // MARK: - Stopping

    private func stop() {
        defer { metrics?.shutdown(timeout: min(5, settings.agent.stopTimeoutSeconds)) }
        guard let run = running else {
            logger.info("agent stopped")
            return
        }
        logger.notice(
            "stopping: waiting up to \(Int(settings.agent.stopTimeoutSeconds)) s for in-flight uploads",
            metadata: ["kind": "\(run.plan.kind)"]
        )
        run.state.requestStop()
        let deadline = Date().addingTimeInterval(settings.agent.stopTimeoutSeconds)
        while run.finished.withLock({ $0 }) == nil, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if run.finished.withLock({ $0 }) == nil {
            logger.error(
                "in-flight uploads did not finish in time; abandoning them (the next start checks them in the bucket)"
            )
        } else {
            logger.info("agent stopped")
        }
    }
}

// MARK: - Metrics

extension Agent {
    /// The CloudWatch publisher `metrics.cloudwatch` asks for, or nil (disabled, or it cannot be set up: then
    /// the agent runs without metrics and says why).
    fileprivate func startMetrics() -> MetricsPublisher? {
        let cloudwatch = settings.metrics.cloudwatch
        guard cloudwatch.enabled else { return nil }
        do {
            let context = try S3Context(config: config, environment: environment)
            let client = try CloudWatchClient(settings: cloudwatch, context: context)
            logger.info(
                "publishing metrics to CloudWatch",
                metadata: ["cloudwatch.namespace": "\(client.namespace)", "cloudwatch.endpoint": "\(client.url)"]
            )
            return MetricsPublisher(client: client, flushInterval: cloudwatch.flushSeconds, logger: logger)
        } catch {
            logger.error("CloudWatch metrics disabled: \(error)")
            return nil
        }
    }
}

/// The run in progress, as the loop tracks it.
private final class RunningUpload: Sendable {
    let plan: AgentRunPlan
    let state: RunState
    let finished = Mutex<Result<AgentRun.Outcome, any Error>?>(nil)

    init(plan: AgentRunPlan, state: RunState) {
        self.plan = plan
        self.state = state
    }
}

extension FileVersion {
    /// The version of the regular file at `path` now (`lstat`, or `stat` when following links); nil when it is
    /// gone or not a regular file.
    static func current(at path: [UInt8], followSymlinks: Bool) -> FileVersion? {
        var info = stat()
        let result = path.withCPath { followSymlinks ? stat($0, &info) : lstat($0, &info) }
        guard result == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        return FileVersion(
            size: Int64(info.st_size),
            mtime: Timestamp(seconds: Int64(info.st_mtim.tv_sec), nanoseconds: Int64(info.st_mtim.tv_nsec))
        )
    }
}

/// Files a scan found that the agent does not know, asked of the ledger in batches: those it stores (an earlier
/// run uploaded them) are handled at once, the others queued as the scan would.
private struct StoredLookup {
    private struct Entry {
        var file: SourceFile
        var version: FileVersion
        var settled: Bool
    }
    private let ledger: Ledger?
    private let projectID: Int64
    private var entries: [Entry] = []
    private var candidates: [StoredCandidate] = []
    /// Files a batch holds before the ledger is asked: one round trip each.
    static let batchSize = 5_000

    init(ledger: Ledger?, projectID: Int64) {
        self.ledger = ledger
        self.projectID = projectID
    }

    /// Whether there is a ledger to ask.
    var isActive: Bool { ledger != nil }
    var isFull: Bool { entries.count >= Self.batchSize }

    mutating func add(_ file: SourceFile, _ version: FileVersion, settled: Bool, placement: Placement) {
        entries.append(Entry(file: file, version: version, settled: settled))
        candidates.append(
            StoredCandidate(bucket: placement.bucket, key: placement.key, size: version.size, mtime: version.mtime)
        )
    }

    /// Asks the ledger about the batch and hands each file to the tracker: stored ones as handled, the rest as
    /// the scan found them. When the ledger cannot answer, every file is queued (the run then finds out).
    ///
    /// - Returns: how many the ledger stores.
    mutating func flush(
        into tracker: inout StabilityTracker,
        newlyReady: inout [SourceFile],
        now: Date,
        logger: Logger
    ) -> Int {
        guard let ledger, !entries.isEmpty else { return 0 }
        defer {
            entries.removeAll(keepingCapacity: true)
            candidates.removeAll(keepingCapacity: true)
        }
        let stored: [Bool]
        do {
            stored = try ledger.storedMatches(projectID: projectID, candidates, acceptingImported: true)
        } catch {
            logger.warning(
                "cannot ask the ledger which files are stored; queueing them",
                metadata: ["error": "\(error)"]
            )
            stored = [Bool](repeating: false, count: entries.count)
        }
        var count = 0
        for (entry, isStored) in zip(entries, stored) {
            if isStored {
                tracker.markStored(entry.file, entry.version)
                count += 1
            } else if tracker.scannedUnknown(entry.file, entry.version, settled: entry.settled, now: now) {
                newlyReady.append(entry.file)
            }
        }
        return count
    }
}
