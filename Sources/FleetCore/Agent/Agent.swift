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
/// One thread (the caller's) runs the loop: file events, stability, decisions, heartbeat, deletions. Uploads
/// run on a queue of their own, one run at a time, each a ledger session (kind `startup`, `immediate` or
/// `scheduled`) followed by retry rounds and the trigger (`UploadCycle`). Files that become ready during a
/// run wait for the next one. The ledger is the memory: a restart scans the sources again and skips what
/// `stored_objects` records, after reconciling what a killed predecessor left `uploading`.
package final class Agent {
    package var configPath: String
    package var overrides: [ConfigOverride]
    package private(set) var config: FleetConfig
    package let databaseURL: String
    package let clock: any AgentClock
    package let control: AgentControl
    package let logger: Logger
    package var environment = ProcessInfo.processInfo.environment
    /// Called after each reload attempt and each run, for systemd's notify protocol and tests.
    package var onNotify: (String) -> Void = { _ in }
    package let hostname = ProcessInfo.processInfo.hostName

    // Configuration-derived state.
    private var mapper: KeyMapper
    private var sources: [SourceSettings] = []
    private var roots: [[UInt8]] = []
    private var rules: [ScanRules] = []
    private var schedule: UploadSchedule?
    private var hours: OperationalHours?

    // Detection.
    private var tracker: StabilityTracker
    private var watcher: FileWatcher?
    private var watchedRoots: [Int] = []
    private var nextRescan = Date.distantPast

    // Decisions.
    private var startupRunPending = false
    private var scheduledRunPending = false
    private var immediateBacklog: Set<SourceFile> = []
    private var nextScheduledRun: Date?
    private var wasInsideHours = false
    /// Files a finished run left unsettled (failed after its retry rounds): offered again after a backoff.
    private var unsettled: Set<SourceFile> = []
    private var unsettledRounds = 0
    private var nextUnsettledRetry = Date.distantFuture
    /// Bumped when the sources change: source indices of a run started before then mean something else.
    private var sourcesGeneration = 0
    private var started = false
    private var running: RunningUpload?
    private var runFailures = 0
    private var nextRunAllowed = Date.distantPast
    private var lastUploadAt: Date?

    // The ledger, as the loop sees it (runs open their own connections).
    private var ledger: Ledger?
    private var projectID: Int64 = 0
    private var deviceID: Int64 = 0
    private var connectFailures = 0
    private var nextConnectAttempt = Date.distantPast
    private var reconciled = false
    private var nextReconcileAttempt = Date.distantPast
    private var nextHeartbeat = Date.distantPast
    private var nextAfterUploadDeletion = Date.distantPast
    private var nextAgeDeletion: Date?
    private var nextDiskCheck = Date.distantPast
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
        self.databaseURL = databaseURL
        self.clock = clock
        self.control = control
        self.logger = logger
        mapper = try KeyMapper(config: config)
        tracker = StabilityTracker(stabilitySeconds: config.stabilitySeconds)
        try apply(config)
    }

    /// Runs until `control.requestStop()`. In-flight uploads then get `agent.stop_timeout_seconds` to finish;
    /// after that they are abandoned (their rows stay `uploading` and the next start reconciles them).
    package func run() {
        logger.info(
            "agent started",
            metadata: [
                "device": "\(config.effectiveDevice)",
                "sources": "\(sources.map { $0.name ?? "" }.joined(separator: ","))",
                "stability_seconds": "\(config.stabilitySeconds)",
            ]
        )
        metrics = startMetrics()
        started = true
        wasInsideHours = hours?.contains(clock.now(), timeZone: config.agentTimeZone) ?? true
        startWatching()
        if config.scanExistingFiles { rescan(reason: "start-up scan") } else { nextRescan = clock.now() }
        startupRunPending = config.uploadOnStart
        onNotify("READY=1")

        while !control.stopRequested {
            if control.takeReload() { reload() }
            let tick = max(0.05, min(1.0, config.stabilitySeconds / 4))
            handle(watcher?.poll(timeout: tick) ?? idle(tick))
            let now = clock.now()
            if now >= nextRescan { rescan(reason: "periodic rescan") }
            promoteStableFiles(now: now)
            connectIfNeeded(now: now)
            reconcileIfNeeded(now: now)
            collectFinishedRun(now: now)
            decide(now: now)
            housekeeping(now: now)
        }
        onNotify("STOPPING=1")
        stop()
    }

    // MARK: - Configuration

    /// Derives everything the loop needs from `config`; throws when a key template cannot be built.
    private func apply(_ new: FleetConfig) throws {
        mapper = try KeyMapper(config: new)
        let sourcesChanged = new.effectiveSources != sources || new.scan != config.scan
        config = new
        sources = new.effectiveSources
        roots = sources.map { Array($0.path.utf8).trailingSlashRemoved }
        let walk = SourceWalk(config: new, mapper: mapper, logger: logger)
        rules = sources.map { source in
            var rule = walk.rules(for: source)
            rule.minAgeSeconds = 0
            rule.maxAgeDays = nil
            return rule
        }
        schedule = UploadSchedule(settings: new.agent?.schedule)
        hours = OperationalHours(settings: new.agent?.operationalHours)
        tracker.stabilitySeconds = new.stabilitySeconds
        let now = clock.now()
        nextScheduledRun = schedule?.nextRun(after: now, timeZone: new.agentTimeZone)
        nextAgeDeletion = new.deletion?.age.flatMap { age in
            guard age.enabled != false else { return nil }
            return UploadSchedule.daily(ClockTime(parsing: age.at ?? "02:00") ?? ClockTime(parsing: "02:00")!)
                .nextRun(after: now, timeZone: new.agentTimeZone)
        }
        if sourcesChanged, started {
            sourcesGeneration += 1
            unsettled.removeAll()
            immediateBacklog.removeAll()
            tracker = StabilityTracker(stabilitySeconds: new.stabilitySeconds)
            startWatching()
            rescan(reason: "sources changed")
        }
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
                ledger = nil  // project or device may differ: look them up again
            }
            try apply(new)
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
                followSymlinks: config.followSymlinks,
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
                if let version = FileVersion.current(at: path, followSymlinks: config.followSymlinks) {
                    // A file older than scan.max_age_days that only had its attributes touched (chmod, chown,
                    // a source coming back) is not new: the age limit holds for events as for scans.
                    if !tracker.knows(file), version.mtime < ageCutoff(now) { continue }
                    tracker.observe(file, version, now: now)
                } else {
                    tracker.forget(file)
                }
            case .removed(let path):
                if let file = sourceFile(at: path) { tracker.forget(file) }
            case .rescanNeeded(let reason):
                logger.notice("file events may have been missed; rescanning", metadata: ["reason": "\(reason)"])
                nextRescan = .distantPast
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
    private func rescan(reason: String) {
        let now = clock.now()
        nextRescan = now.addingTimeInterval(config.rescanSeconds)
        if watchedRoots.count
            != sources.indices.filter({ FileManager.default.isReadableDirectory(sources[$0].path) })
            .count
        {
            startWatching()
        }
        let stamp = Timestamp(now)
        let cutoff = ageCutoff(now).microseconds
        let inside = hours?.contains(now, timeZone: config.agentTimeZone) ?? true
        let startup = reason == "start-up scan"
        var seen: Set<SourceFile> = []
        var counts = (found: 0, taken: 0)
        for index in sources.indices where FileManager.default.isReadableDirectory(sources[index].path) {
            let scanner = Scanner(root: sources[index].path, rules: rules[index], followSymlinks: config.followSymlinks)
            do {
                _ = try scanner.run(now: stamp) { scanned in
                    let file = SourceFile(source: index, relativePath: scanned.relativePath)
                    seen.insert(file)
                    counts.found += 1
                    guard scanned.mtime.microseconds >= cutoff else { return }
                    let age = Double(stamp.microseconds - scanned.mtime.microseconds) / 1_000_000
                    let ready = tracker.observe(
                        file,
                        FileVersion(size: scanned.size, mtime: scanned.mtime),
                        now: now,
                        settled: age >= StabilityTracker.settledAge
                    )
                    // A rescan that finds a complete file nobody reported goes up like any ready file; the
                    // start-up scan's files go with the start-up run (upload_on_start) or the schedule.
                    if ready, !startup, inside { immediateBacklog.insert(file) }
                    counts.taken += 1
                }
            } catch {
                logger.warning(
                    "cannot scan a source",
                    metadata: ["source": "\(sources[index].name ?? "")", "error": "\(error)"]
                )
                return  // an incomplete scan must not forget files
            }
        }
        tracker.forgetMissing { !seen.contains($0) }
        logger.info(
            "\(reason): \(counts.found) files, \(counts.taken) recent enough",
            metadata: ["queue.files": "\(tracker.queue.files)", "settling": "\(tracker.settlingCount)"]
        )
    }

    /// Files modified before this are left alone unless already known (`scan.max_age_days`, default 3).
    private func ageCutoff(_ now: Date) -> Timestamp {
        Timestamp(microseconds: Timestamp(now).microseconds - Int64(config.agentMaxAgeDays * 86_400 * 1_000_000))
    }

    private func promoteStableFiles(now: Date) {
        let promoted = tracker.promote(now: now) { file in
            FileVersion.current(at: fullPath(of: file), followSymlinks: config.followSymlinks)
        }
        guard !promoted.isEmpty else { return }
        logger.debug("files ready", metadata: ["files": "\(promoted.count)"])
        if hours?.contains(now, timeZone: config.agentTimeZone) ?? true {
            immediateBacklog.formUnion(promoted)
        }
    }

    private func fullPath(of file: SourceFile) -> [UInt8] {
        roots[file.source] + [UInt8(ascii: "/")] + file.relativePath
    }

    // MARK: - Decisions

    /// Starts the next run when none is in progress: start-up first, then a due schedule, then files that
    /// became ready inside operational hours (all ready files with batch upload, else only those).
    private func decide(now: Date) {
        let zone = config.agentTimeZone
        if let next = nextScheduledRun, now >= next {
            scheduledRunPending = true
            nextScheduledRun = schedule?.nextRun(after: now, timeZone: zone)
        }
        let inside = hours?.contains(now, timeZone: zone) ?? true
        if inside, !wasInsideHours, tracker.queue.files > 0 {
            // Operational hours begin: what queued up outside them goes now.
            immediateBacklog.formUnion(tracker.ready.map(\.file))
        }
        wasInsideHours = inside
        if now >= nextUnsettledRetry {
            // What the last runs could not upload is offered again (inside the hours; else the schedule takes it).
            nextUnsettledRetry = .distantFuture
            if inside { immediateBacklog.formUnion(unsettled.filter { tracker.readyVersion(of: $0) != nil }) }
            unsettled.removeAll()
        }
        if !inside { immediateBacklog.removeAll() }

        // Without the ledger a run could not open its session, and before what a dead predecessor left
        // `uploading` is settled a run might send it twice: the files stay queued until then.
        guard running == nil, ledger != nil, reconciled, now >= nextRunAllowed else { return }
        let kind: String
        if startupRunPending {
            kind = "startup"
        } else if scheduledRunPending {
            kind = "scheduled"
        } else if !immediateBacklog.isEmpty {
            kind = "immediate"
        } else {
            return
        }
        let ready = tracker.ready
        let files =
            kind == "immediate" && !config.batchUpload ? ready.filter { immediateBacklog.contains($0.file) } : ready
        startupRunPending = false
        scheduledRunPending = false
        immediateBacklog.removeAll()
        guard !files.isEmpty else {
            logger.info("\(kind) upload: nothing ready")
            return
        }
        start(kind: kind, files: files)
    }

    private func start(kind: String, files: [(file: SourceFile, version: FileVersion)]) {
        let run = RunningUpload(
            kind: kind,
            files: files,
            generation: sourcesGeneration,
            state: RunState(giveUpAfter: config.giveUpAfterSeconds)
        )
        var walked: [WalkedFile] = []
        walked.reserveCapacity(files.count)
        for (file, version) in files {
            let path = fullPath(of: file)
            let name = sources[file.source].name ?? ""
            let placement: Result<Placement, KeyError>
            do throws(KeyError) {
                placement = .success(
                    try mapper.place(source: name, relativePath: file.relativePath, mtime: version.mtime)
                )
            } catch {
                placement = .failure(error)
            }
            let readable = path.withCPath { access($0, R_OK) } == 0
            walked.append(
                WalkedFile(
                    source: name,
                    file: ScannedFile(
                        relativePath: file.relativePath,
                        size: version.size,
                        mtime: version.mtime,
                        readable: readable
                    ),
                    fullPath: path,
                    displayPath: PathText.escaped(path),
                    placement: placement
                )
            )
        }
        logger.info("\(kind) upload of \(files.count) files")
        let job = AgentRun(
            kind: kind,
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

    /// When the run in progress has ended: mark what it settled, log, and after a run that could not start,
    /// hold further runs back with backoff.
    private func collectFinishedRun(now: Date) {
        guard let run = running, let result = run.finished.withLock({ $0 }) else { return }
        running = nil
        // After a reload that changed the sources the run's indices name other files; the tracker was rebuilt
        // from a rescan, and files the run settled are recognised as stored by the next one.
        let current = run.generation == sourcesGeneration
        switch result {
        case .success(let outcome):
            runFailures = 0
            nextRunAllowed = .distantPast
            var left: Set<SourceFile> = []
            for (file, version) in run.files where current {
                if outcome.settled.contains(PathText.escaped(fullPath(of: file))) {
                    tracker.markHandled(file, version)
                } else if tracker.readyVersion(of: file) == version {
                    left.insert(file)
                }
            }
            if left.isEmpty {
                unsettledRounds = 0
            } else {
                // Failed even after the run's retry rounds: offered again after a backoff, so an outage that
                // outlasted the rounds does not leave them waiting for a file event that may never come.
                unsettledRounds += 1
                unsettled.formUnion(left)
                let ceiling = config.retryRoundBackoff.ceiling(afterAttempt: unsettledRounds)
                let wait = ceiling / 2 + Double.random(in: 0...(ceiling / 2), using: &generator)
                nextUnsettledRetry = min(nextUnsettledRetry, now.addingTimeInterval(wait))
            }
            if outcome.uploadedFiles > 0 { lastUploadAt = clock.now() }
            metrics?.record(
                uploadedBytes: outcome.uploadedBytes,
                files: outcome.uploadedFiles,
                failures: outcome.failedFiles
            )
            logger.info(
                "\(run.kind) upload finished",
                metadata: [
                    "session.id": "\(outcome.sessionID.map(String.init) ?? "-")",
                    "status": "\(outcome.status)", "files.uploaded": "\(outcome.uploadedFiles)",
                    "files.already_stored": "\(outcome.alreadyStored)", "queue.files": "\(tracker.queue.files)",
                ]
            )
            nextAfterUploadDeletion = .distantPast
        case .failure(let error):
            runFailures += 1
            let ceiling = Backoff(baseSeconds: 15, capSeconds: 900).ceiling(afterAttempt: runFailures)
            let wait = ceiling / 2 + Double.random(in: 0...(ceiling / 2), using: &generator)
            nextRunAllowed = now.addingTimeInterval(wait)
            // The files stay ready, and whatever asked for the run asks again once the wait is over: a start-up or
            // scheduled run stays pending (scheduled runs always run), an immediate one keeps its files.
            switch run.kind {
            case "startup": startupRunPending = true
            case "scheduled": scheduledRunPending = true
            default: if current { immediateBacklog.formUnion(run.files.map(\.file)) }
            }
            // Rows the failed run may have left claimed are settled before the next run.
            reconciled = false
            logger.error(
                "\(run.kind) upload could not run; trying again in \(Int(wait)) s",
                metadata: ["error": "\(error)"]
            )
        }
    }

    // MARK: - Ledger, heartbeat, deletions

    private func connectIfNeeded(now: Date) {
        guard ledger == nil, now >= nextConnectAttempt else { return }
        do {
            let connection = try Ledger(url: databaseURL, logger: logger)
            let context = try S3Context(config: config, environment: environment)
            projectID = try connection.upsertProject(
                config,
                region: context.endpoint.region,
                endpoint: config.s3.endpoint
            )
            deviceID = try connection.upsertDevice(
                name: config.effectiveDevice,
                hostname: hostname,
                agentVersion: FleetVersion.number
            )
            ledger = connection
            if connectFailures > 0 { logger.notice("ledger reachable again") }
            connectFailures = 0
        } catch {
            ledgerFailed(error, now: now)
        }
    }

    /// Settles what a dead process (or a run of this one that failed) left `uploading`, before the next run. An
    /// S3 problem here holds back runs only: heartbeat and deletions go on, and it is tried again in a minute.
    private func reconcileIfNeeded(now: Date) {
        guard let ledger, !reconciled, running == nil, now >= nextReconcileAttempt else { return }
        do {
            let context = try S3Context(config: config, environment: environment)
            _ = try Reconciler(context: context, logger: logger)
                .run(ledger: ledger, deviceID: deviceID, hostname: hostname, includeOwn: true)
            reconciled = true
        } catch let error as LedgerError {
            ledgerFailed(error, now: now)
        } catch {
            nextReconcileAttempt = now.addingTimeInterval(60)
            logger.warning(
                "cannot check what an earlier run left in flight; uploads wait, retrying in 60 s",
                metadata: ["error": "\(error)"]
            )
        }
    }

    /// Drops the loop's connection and schedules the next attempt with backoff. While there is no ledger,
    /// nothing is deleted: no deletion without the ledger confirming the upload.
    private func ledgerFailed(_ error: any Error, now: Date) {
        ledger = nil
        connectFailures += 1
        let ceiling = Backoff(baseSeconds: 2, capSeconds: 300).ceiling(afterAttempt: connectFailures)
        let wait = ceiling / 2 + Double.random(in: 0...(ceiling / 2), using: &generator)
        nextConnectAttempt = now.addingTimeInterval(wait)
        let level: Logger.Level = connectFailures == 1 || connectFailures % 10 == 0 ? .error : .debug
        logger.log(
            level: level,
            "ledger unavailable; detecting files, not deleting any; next attempt in \(Int(wait)) s",
            metadata: ["error": "\(error)", "attempts": "\(connectFailures)"]
        )
    }

    private func housekeeping(now: Date) {
        guard let ledger else { return }
        do {
            if now >= nextHeartbeat {
                nextHeartbeat = now.addingTimeInterval(config.heartbeatSeconds)
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
            }
            let policies = DeletionPolicies(
                config: config,
                ledger: ledger,
                projectID: projectID,
                deviceID: deviceID,
                logger: logger
            )
            if now >= nextAfterUploadDeletion {
                nextAfterUploadDeletion = now.addingTimeInterval(min(config.heartbeatSeconds, 60))
                _ = try policies.afterUpload(now: now)
            }
            if let next = nextAgeDeletion, now >= next {
                nextAgeDeletion = UploadSchedule.daily(ClockTime(parsing: config.deletion?.age?.at ?? "02:00")!)
                    .nextRun(after: now, timeZone: config.agentTimeZone)
                _ = try policies.ageBased(now: now)
            }
            if now >= nextDiskCheck {
                nextDiskCheck = now.addingTimeInterval(min(config.heartbeatSeconds, 30))
                _ = try policies.emergency(now: now)
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
        defer { metrics?.shutdown(timeout: min(5, config.stopTimeoutSeconds)) }
        guard let run = running else {
            logger.info("agent stopped")
            return
        }
        logger.notice(
            "stopping: waiting up to \(Int(config.stopTimeoutSeconds)) s for in-flight uploads",
            metadata: ["kind": "\(run.kind)"]
        )
        run.state.requestStop()
        let deadline = Date().addingTimeInterval(config.stopTimeoutSeconds)
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
        guard let settings = config.enabledCloudWatch else { return nil }
        do {
            let context = try S3Context(config: config, environment: environment)
            let client = try CloudWatchClient(settings: settings, config: config, context: context)
            logger.info(
                "publishing metrics to CloudWatch",
                metadata: ["cloudwatch.namespace": "\(client.namespace)", "cloudwatch.endpoint": "\(client.url)"]
            )
            return MetricsPublisher(client: client, flushInterval: settings.flushSeconds ?? 60, logger: logger)
        } catch {
            logger.error("CloudWatch metrics disabled: \(error)")
            return nil
        }
    }
}

/// The run in progress, as the loop tracks it.
private final class RunningUpload: Sendable {
    let kind: String
    let files: [(file: SourceFile, version: FileVersion)]
    let generation: Int
    let state: RunState
    let finished = Mutex<Result<AgentRun.Outcome, any Error>?>(nil)

    init(kind: String, files: [(file: SourceFile, version: FileVersion)], generation: Int, state: RunState) {
        self.kind = kind
        self.files = files
        self.generation = generation
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
