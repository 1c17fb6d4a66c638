import FleetSystem
import Foundation

/// The vehicle agent's decisions: when to rescan, connect and reconcile, when to run and with which files, when
/// to send the heartbeat and apply each deletion policy, and how long to back off after a failure.
///
/// A value with no I/O: the loop (`Agent`) feeds it events with the current time, the ready queue and the
/// outcomes of what it did, and performs the actions it returns. Waits after failures take a `jitter` (0…1)
/// from the caller, so a test with fixed times and jitter sees exactly one course of events.
///
/// Runs, one at a time, in this order of precedence: the start-up run (`agent.upload_on_start`), a due
/// scheduled run, then files that became ready inside operational hours (`immediate`: the whole queue with
/// `agent.batch_upload`, else only those files). No run starts without the ledger, before what an earlier run
/// left `uploading` is reconciled, or while the backoff after a failed run lasts. A failed run is asked for
/// again with the same kind once the backoff is over; files a finished run left unsettled are offered again
/// after a backoff of their own.
package struct AgentStateMachine: Sendable {
    /// The part of the configuration the decisions read.
    package struct Settings: Sendable, Equatable {
        package var schedule: UploadSchedule?
        package var hours: OperationalHours?
        /// The zone schedule, operational hours and `deletion.age.at` are read in.
        package var timeZone: TimeZone
        package var scanExistingFiles: Bool
        package var uploadOnStart: Bool
        package var batchUpload: Bool
        package var rescanSeconds: Double
        package var heartbeatSeconds: Double
        /// The wait before files a run left unsettled are offered again (`retry.round_backoff_*`).
        package var retryRoundBackoff: Backoff
        /// When the age-based deletion runs each day; nil when `deletion.age` is absent or disabled.
        package var ageDeletionAt: ClockTime?

        package init(
            schedule: UploadSchedule? = nil,
            hours: OperationalHours? = nil,
            timeZone: TimeZone,
            scanExistingFiles: Bool = ResolvedConfig.Agent.defaultScanExistingFiles,
            uploadOnStart: Bool = ResolvedConfig.Agent.defaultUploadOnStart,
            batchUpload: Bool = ResolvedConfig.Agent.defaultBatchUpload,
            rescanSeconds: Double = ResolvedConfig.Agent.defaultRescanMinutes * 60,
            heartbeatSeconds: Double = ResolvedConfig.Agent.defaultHeartbeatSeconds,
            retryRoundBackoff: Backoff = Backoff(
                baseSeconds: ResolvedConfig.Retry.defaultRoundBackoffBaseSeconds,
                capSeconds: ResolvedConfig.Retry.defaultRoundBackoffCapSeconds
            ),
            ageDeletionAt: ClockTime? = nil
        ) {
            self.schedule = schedule
            self.hours = hours
            self.timeZone = timeZone
            self.scanExistingFiles = scanExistingFiles
            self.uploadOnStart = uploadOnStart
            self.batchUpload = batchUpload
            self.rescanSeconds = rescanSeconds
            self.heartbeatSeconds = heartbeatSeconds
            self.retryRoundBackoff = retryRoundBackoff
            self.ageDeletionAt = ageDeletionAt
        }

        /// The settings `config` gives (already validated).
        package init(config: FleetConfig) {
            let resolved = config.resolved
            self.init(
                schedule: resolved.agent.schedule,
                hours: resolved.agent.operationalHours,
                timeZone: resolved.agent.timeZone,
                scanExistingFiles: resolved.agent.scanExistingFiles,
                uploadOnStart: resolved.agent.uploadOnStart,
                batchUpload: resolved.agent.batchUpload,
                rescanSeconds: resolved.agent.rescanSeconds,
                heartbeatSeconds: resolved.agent.heartbeatSeconds,
                retryRoundBackoff: resolved.retry.roundBackoff,
                ageDeletionAt: resolved.deletion.age?.at
            )
        }

        /// Whether `date` is inside operational hours (always, without them).
        func isInsideHours(_ date: Date) -> Bool { hours?.contains(date, timeZone: timeZone) ?? true }
    }

    /// The wait after a run that could not start (ledger, credentials, bucket).
    package static let runBackoff = Backoff(baseSeconds: 15, capSeconds: 900)
    /// The wait between attempts to reach the ledger.
    package static let ledgerBackoff = Backoff(baseSeconds: 2, capSeconds: 300)
    /// The wait before reconciling again after S3 could not be asked: seconds at first, growing while it stays
    /// out of reach.
    package static let reconcileBackoff = Backoff(baseSeconds: 2, capSeconds: 300)
    /// A reconciliation that succeeded is asked for again after this long, so multipart uploads abandoned in
    /// the bucket are aborted daily however long the agent runs.
    package static let reconcileEverySeconds: Double = 86_400

    private enum LedgerState: Sendable, Equatable {
        case disconnected(failures: Int, nextAttempt: Date)
        case connecting(failures: Int)
        case connected
    }

    private enum Reconciliation: Sendable, Equatable {
        case needed(notBefore: Date)
        case inProgress
        case done
    }

    package private(set) var settings: Settings
    private var started = false

    // Detection.
    private var nextRescan = Date.distantPast
    private var rescanInProgress = false

    // Runs.
    private var startupRunPending = false
    /// The last run took a full turn of a larger backlog; the next takes the rest.
    private var continuingBacklog = false
    private var scheduledRunPending = false
    /// Files that became ready inside operational hours and wait for an immediate run.
    private var immediateBacklog: Set<SourceFile> = []
    private var nextScheduledRun: Date?
    private var wasInsideHours = false
    /// Files a finished run left unsettled (failed after its retry rounds): offered again after a backoff.
    private var unsettled: Set<SourceFile> = []
    private var unsettledRounds = 0
    private var nextUnsettledRetry = Date.distantFuture
    /// Bumped when the sources change.
    private var sourcesGeneration = 0
    /// The run in progress, if any.
    package private(set) var running: AgentRunPlan?
    private var runFailures = 0
    /// No run starts before this (the backoff after a failed run).
    package private(set) var nextRunAllowed = Date.distantPast

    // The ledger.
    private var ledger = LedgerState.disconnected(failures: 0, nextAttempt: .distantPast)
    private var reconciliation = Reconciliation.needed(notBefore: .distantPast)
    /// Reconciliations that could not ask the store since the last one that could.
    package private(set) var reconcileFailures = 0
    /// When the last successful reconciliation is due again.
    private var nextDailyReconcile = Date.distantFuture

    // Housekeeping.
    private var nextHeartbeat = Date.distantPast
    private var nextAfterUploadDeletion = Date.distantPast
    private var nextAgeDeletion: Date?
    private var nextDiskCheck = Date.distantPast

    /// A machine for an agent that has not started yet; `now` places the first scheduled run and age deletion.
    package init(settings: Settings, now: Date) {
        self.settings = settings
        placeTimedEvents(now: now)
    }

    // MARK: - What the loop reads

    /// Failed attempts to reach the ledger since it was last reachable.
    package var connectFailures: Int {
        switch ledger {
        case .disconnected(let failures, _), .connecting(let failures): failures
        case .connected: 0
        }
    }

    /// Whether a `connect` is out and its outcome not in yet.
    private var isConnecting: Bool {
        if case .connecting = ledger { true } else { false }
    }

    /// Whether the ledger is reachable, as last reported.
    package var isLedgerConnected: Bool { ledger == .connected }

    /// Whether what earlier runs left `uploading` has been settled since the last failed run.
    package var isReconciled: Bool { reconciliation == .done }

    /// Whether files of `plan` still name the same files (no reload changed the sources since it was planned).
    package func isCurrent(_ plan: AgentRunPlan) -> Bool { plan.generation == sourcesGeneration }

    // MARK: - Events

    /// The loop starts: the start-up scan (`agent.scan_existing_files`) and the start-up run
    /// (`agent.upload_on_start`) are asked for.
    package mutating func start(now: Date) -> [AgentAction] {
        started = true
        wasInsideHours = settings.isInsideHours(now)
        startupRunPending = settings.uploadOnStart
        guard settings.scanExistingFiles else {
            nextRescan = now
            return []
        }
        return [requestRescan(.startup, now: now)]
    }

    /// A configuration was applied (a reload). The schedule and the age deletion are placed again from `now`;
    /// when the sources or scan rules changed, what was queued for them is dropped and they are walked afresh.
    package mutating func configApplied(_ new: Settings, now: Date, sourcesChanged: Bool) -> [AgentAction] {
        settings = new
        placeTimedEvents(now: now)
        guard sourcesChanged, started else { return [] }
        sourcesGeneration += 1
        unsettled.removeAll()
        immediateBacklog.removeAll()
        return [requestRescan(.sourcesChanged, now: now)]
    }

    /// File events may have been missed: walk the sources at the next tick.
    package mutating func rescanRequested() {
        nextRescan = .distantPast
    }

    /// A scan asked for by `rescan` ended; `newlyReady` are the complete files it found that were not known in
    /// this version. Those inside operational hours go with the next immediate run, except a start-up scan's.
    package mutating func scanFinished(_ reason: AgentAction.RescanReason, newlyReady: [SourceFile], now: Date) {
        rescanInProgress = false
        guard reason != .startup, settings.isInsideHours(now) else { return }
        immediateBacklog.formUnion(newlyReady)
    }

    /// Files settled (stable for `agent.stability_seconds`) and are in the queue now: inside operational hours
    /// they go with the next immediate run, outside them they wait for the hours or the schedule.
    package mutating func filesReady(_ files: [SourceFile], now: Date) {
        guard !files.isEmpty, settings.isInsideHours(now) else { return }
        immediateBacklog.formUnion(files)
    }

    /// The loop's ledger connection is open and project and device are registered.
    package mutating func ledgerConnected() {
        ledger = .connected
    }

    /// The ledger could not be reached or failed: try again after a backoff, and nothing that needs it
    /// (runs, heartbeat, deletions) happens meanwhile.
    ///
    /// - Parameter jitter: 0…1, the share of the backoff's upper half to wait.
    /// - Returns: the wait before the next attempt, in seconds.
    @discardableResult
    package mutating func ledgerLost(now: Date, jitter: Double) -> Double {
        let failures = connectFailures + 1
        let wait = Self.ledgerBackoff.halfJitteredDelay(afterAttempt: failures, jitter: jitter)
        ledger = .disconnected(failures: failures, nextAttempt: now.addingTimeInterval(wait))
        if reconciliation == .inProgress { reconciliation = .needed(notBefore: now) }
        return wait
    }

    /// A reload changed what the connection stands for (project, device or store): connect again at once.
    package mutating func ledgerReset() {
        guard ledger == .connected else { return }
        ledger = .disconnected(failures: 0, nextAttempt: .distantPast)
    }

    /// What earlier runs left `uploading` is settled: runs may start. It is asked for again in a day.
    package mutating func reconciled(now: Date) {
        reconciliation = .done
        reconcileFailures = 0
        nextDailyReconcile = now.addingTimeInterval(Self.reconcileEverySeconds)
    }

    /// Reconciliation could not ask the store: runs wait, and it is tried again after a backoff that starts at
    /// seconds and grows while the store stays out of reach.
    ///
    /// - Parameter jitter: 0…1, the share of the backoff's upper half to wait.
    /// - Returns: the wait before the next attempt, in seconds.
    @discardableResult
    package mutating func reconciliationFailed(now: Date, jitter: Double) -> Double {
        reconcileFailures += 1
        let wait = Self.reconcileBackoff.halfJitteredDelay(afterAttempt: reconcileFailures, jitter: jitter)
        reconciliation = .needed(notBefore: now.addingTimeInterval(wait))
        return wait
    }

    /// An action needing the ledger (heartbeat, deletion, reconciliation) was not performed because the
    /// connection went away before it: it is due again as soon as the ledger is back.
    package mutating func notPerformed(_ action: AgentAction, now: Date) {
        switch action {
        case .reconcile: if reconciliation == .inProgress { reconciliation = .needed(notBefore: now) }
        case .sendHeartbeat: nextHeartbeat = min(nextHeartbeat, now)
        case .runDeletion(.afterUpload): nextAfterUploadDeletion = min(nextAfterUploadDeletion, now)
        case .runDeletion(.age): nextAgeDeletion = nextAgeDeletion.map { min($0, now) } ?? now
        case .runDeletion(.emergency): nextDiskCheck = min(nextDiskCheck, now)
        case .rescan, .connect, .startRun, .noFilesReady: break
        }
    }

    /// The run in progress ended with a session; `left` are its files that are still ready in the version it
    /// took but were not settled (they failed even after its retry rounds). They are offered again after a
    /// backoff that grows while runs keep leaving files behind, and the after-upload deletion looks at once.
    ///
    /// - Parameter jitter: 0…1, the share of the backoff's upper half to wait.
    package mutating func runSucceeded(left: Set<SourceFile>, now: Date, jitter: Double) {
        guard let run = running else { return }
        running = nil
        runFailures = 0
        nextRunAllowed = .distantPast
        nextAfterUploadDeletion = .distantPast
        let left = isCurrent(run) ? left : []
        guard !left.isEmpty else {
            unsettledRounds = 0
            return
        }
        unsettledRounds += 1
        unsettled.formUnion(left)
        let wait = settings.retryRoundBackoff.halfJitteredDelay(afterAttempt: unsettledRounds, jitter: jitter)
        nextUnsettledRetry = min(nextUnsettledRetry, now.addingTimeInterval(wait))
    }

    /// The run in progress could not run (no session: ledger, credentials, bucket). Runs wait for a backoff;
    /// then whatever asked for this one asks again (a start-up or scheduled run stays pending, an immediate one
    /// keeps its files), after reconciling what it may have left claimed.
    ///
    /// - Parameter jitter: 0…1, the share of the backoff's upper half to wait.
    /// - Returns: the wait before the next run may start, in seconds.
    @discardableResult
    package mutating func runFailed(now: Date, jitter: Double) -> Double {
        guard let run = running else { return 0 }
        running = nil
        runFailures += 1
        let wait = Self.runBackoff.halfJitteredDelay(afterAttempt: runFailures, jitter: jitter)
        nextRunAllowed = now.addingTimeInterval(wait)
        switch run.kind {
        case .startup: startupRunPending = true
        case .scheduled: scheduledRunPending = true
        case .immediate: if isCurrent(run) { immediateBacklog.formUnion(run.files.map(\.file)) }
        }
        reconciliation = .needed(notBefore: .distantPast)
        return wait
    }

    /// Time passes: what is due at `now`, given the files `queue` holds ready.
    ///
    /// A rescan, a connection attempt or a reconciliation comes alone: runs and housekeeping wait for its outcome
    /// (the loop ticks again at the same moment once it has fed it). Asking again at the same moment after the
    /// outcomes are in returns nothing new.
    package mutating func tick(now: Date, queue: StabilityTracker) -> [AgentAction] {
        var actions: [AgentAction] = []
        if !rescanInProgress, now >= nextRescan { actions.append(requestRescan(.periodic, now: now)) }
        if case .disconnected(let failures, let nextAttempt) = ledger, now >= nextAttempt {
            ledger = .connecting(failures: failures)
            actions.append(.connect)
        }
        if reconciliation == .done, running == nil, now >= nextDailyReconcile {
            nextDailyReconcile = .distantFuture
            reconciliation = .needed(notBefore: now)
        }
        if ledger == .connected, case .needed(let notBefore) = reconciliation, running == nil, now >= notBefore {
            reconciliation = .inProgress
            actions.append(.reconcile)
        }
        guard actions.isEmpty, !rescanInProgress, !isConnecting, reconciliation != .inProgress else { return actions }

        if let action = decideRun(now: now, queue: queue) { actions.append(action) }
        guard ledger == .connected else { return actions }
        // While there is no ledger, nothing is deleted: no deletion without the ledger confirming the upload.
        if now >= nextHeartbeat {
            nextHeartbeat = now.addingTimeInterval(settings.heartbeatSeconds)
            actions.append(.sendHeartbeat)
        }
        if now >= nextAfterUploadDeletion {
            nextAfterUploadDeletion = now.addingTimeInterval(min(settings.heartbeatSeconds, 60))
            actions.append(.runDeletion(.afterUpload))
        }
        if let next = nextAgeDeletion, now >= next {
            nextAgeDeletion = settings.ageDeletionAt.map {
                UploadSchedule.daily($0).nextRun(after: now, timeZone: settings.timeZone)
            }
            actions.append(.runDeletion(.age))
        }
        if now >= nextDiskCheck {
            nextDiskCheck = now.addingTimeInterval(min(settings.heartbeatSeconds, 30))
            actions.append(.runDeletion(.emergency))
        }
        return actions
    }

    // MARK: - Decisions

    private mutating func requestRescan(_ reason: AgentAction.RescanReason, now: Date) -> AgentAction {
        rescanInProgress = true
        nextRescan = now.addingTimeInterval(settings.rescanSeconds)
        return .rescan(reason)
    }

    private mutating func placeTimedEvents(now: Date) {
        nextScheduledRun = settings.schedule?.nextRun(after: now, timeZone: settings.timeZone)
        nextAgeDeletion = settings.ageDeletionAt.map {
            UploadSchedule.daily($0).nextRun(after: now, timeZone: settings.timeZone)
        }
    }

    /// The most files one run takes.
    package static let filesPerRun = 10_000

    /// The run to start now, if one is due and may start: start-up first, then a due schedule, then files that
    /// became ready inside operational hours.
    private mutating func decideRun(now: Date, queue: StabilityTracker) -> AgentAction? {
        if let next = nextScheduledRun, now >= next {
            scheduledRunPending = true
            nextScheduledRun = settings.schedule?.nextRun(after: now, timeZone: settings.timeZone)
        }
        let inside = settings.isInsideHours(now)
        if inside, !wasInsideHours, queue.queue.files > 0 {
            // Operational hours begin: what queued up outside them goes now.
            immediateBacklog.formUnion(queue.ready.map(\.file))
        }
        wasInsideHours = inside
        if now >= nextUnsettledRetry {
            // What the last runs could not upload is offered again (inside the hours; else the schedule takes it).
            nextUnsettledRetry = .distantFuture
            if inside { immediateBacklog.formUnion(unsettled.filter { queue.readyVersion(of: $0) != nil }) }
            unsettled.removeAll()
        }
        if !inside { immediateBacklog.removeAll() }

        // Without the ledger a run could not open its session, and before what a dead predecessor left
        // `uploading` is settled a run might send it twice: the files stay queued until then.
        guard running == nil, ledger == .connected, reconciliation == .done, now >= nextRunAllowed else {
            return nil
        }
        let kind: AgentRunKind
        if startupRunPending {
            kind = .startup
        } else if scheduledRunPending {
            kind = .scheduled
        } else if !immediateBacklog.isEmpty {
            kind = .immediate
        } else {
            return nil
        }
        var ready = queue.ready
        if continuingBacklog {
            // The turn after a full one: files an earlier turn could not upload wait for their own backoff.
            ready.removeAll { unsettled.contains($0.file) }
        }
        let offered =
            kind == .immediate && !settings.batchUpload
            ? ready.filter { immediateBacklog.contains($0.file) } : ready
        // A backlog larger than one run is taken in turns, oldest first: the next run of the same kind starts as
        // soon as this one ends, and memory stays bounded by a run's size, not the backlog's.
        let files = offered.prefix(Self.filesPerRun)
        let more = files.count < offered.count
        continuingBacklog = more
        startupRunPending = kind == .startup && more
        scheduledRunPending = kind == .scheduled && more
        immediateBacklog = kind == .immediate && more ? Set(offered.dropFirst(files.count).map(\.file)) : []
        guard !files.isEmpty else { return .noFilesReady(kind) }
        let plan = AgentRunPlan(
            kind: kind,
            files: files.map { AgentRunPlan.Entry(file: $0.file, version: $0.version) },
            generation: sourcesGeneration
        )
        running = plan
        return .startRun(plan)
    }
}
