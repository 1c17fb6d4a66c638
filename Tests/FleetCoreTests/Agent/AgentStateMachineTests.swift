import FleetSystem
import Foundation
import Testing

@testable import FleetCore

/// The agent's decisions on a clock the test moves by hand: no sleeps, no servers, fixed jitter.
struct AgentStateMachineTests {
    /// The machine, its ready queue and a manual clock, driven as `Agent` drives them: each tick is asked again
    /// at the same moment until it is quiet, and rescans, connections and reconciliations are answered at once.
    struct Loop {
        var machine: AgentStateMachine
        var queue = StabilityTracker(stabilitySeconds: 1)
        var now: Date
        /// Whether `connect` succeeds.
        var ledgerUp = true
        /// Whether `reconcile` can reach the store.
        var storeUp = true
        /// Everything the machine asked for, with the moment it asked.
        var asked: [(at: Date, action: AgentAction)] = []

        /// A machine for `settings` at `start`, started; the start-up scan finds `existing` complete files.
        init(_ settings: AgentStateMachine.Settings, at start: Date, existing: [String] = []) {
            machine = AgentStateMachine(settings: settings, now: start)
            now = start
            let first = machine.start(now: now)
            for name in existing { queue.observe(Self.file(name), Self.version, now: now, settled: true) }
            perform(first, newlyReady: existing.map(Self.file))
        }

        static let version = FileVersion(size: 10, mtime: Timestamp(seconds: 1_700_000_000, nanoseconds: 0))

        static func file(_ name: String) -> SourceFile {
            SourceFile(source: 0, relativePath: Array(name.utf8))
        }

        /// The manual clock: moves to `date` and ticks.
        @discardableResult
        mutating func tick(at date: Date) -> [AgentAction] {
            now = date
            return tick()
        }

        /// Moves the clock by `seconds` and ticks.
        @discardableResult
        mutating func advance(_ seconds: Double) -> [AgentAction] {
            now = now.addingTimeInterval(seconds)
            return tick()
        }

        /// Ticks at the current moment until the machine is quiet; every action it asked for, in order.
        @discardableResult
        mutating func tick() -> [AgentAction] {
            var all: [AgentAction] = []
            var actions = machine.tick(now: now, queue: queue)
            while !actions.isEmpty {
                all += actions
                perform(actions)
                actions = machine.tick(now: now, queue: queue)
            }
            return all
        }

        /// Answers what needs an answer at once; runs stay in progress until the test ends them.
        mutating func perform(_ actions: [AgentAction], newlyReady: [SourceFile] = []) {
            for action in actions {
                asked.append((now, action))
                switch action {
                case .rescan(let reason): machine.scanFinished(reason, newlyReady: newlyReady, now: now)
                case .connect:
                    if ledgerUp { machine.ledgerConnected() } else { machine.ledgerLost(now: now, jitter: 0) }
                case .reconcile:
                    if storeUp {
                        machine.reconciled(now: now)
                    } else {
                        machine.reconciliationFailed(now: now, jitter: 0)
                    }
                case .startRun, .noFilesReady, .sendHeartbeat, .runDeletion: break
                }
            }
        }

        /// Files that became ready (stable) now, as promotion reports them.
        mutating func ready(_ names: String...) {
            for name in names { queue.observe(Self.file(name), Self.version, now: now, settled: true) }
            machine.filesReady(names.map(Self.file), now: now)
        }

        /// Ends the run in progress with a session: every file settled except `left`.
        mutating func succeed(leaving left: [String] = [], jitter: Double = 0) {
            guard let run = machine.running else { return }
            for entry in run.files where !left.contains(String(decoding: entry.file.relativePath, as: UTF8.self)) {
                queue.markHandled(entry.file, entry.version)
            }
            machine.runSucceeded(left: Set(left.map(Self.file)), now: now, jitter: jitter)
        }

        /// The runs asked for: kind and file names (sorted).
        var runs: [String] {
            asked.compactMap { _, action in
                guard case .startRun(let plan) = action else { return nil }
                let names = plan.files.map { String(decoding: $0.file.relativePath, as: UTF8.self) }.sorted()
                return "\(plan.kind) \(names.joined(separator: ","))"
            }
        }
    }

    private static func moment(_ text: String) -> Date { UploadScheduleTests.moment(text) }
    private static func time(_ text: String) -> ClockTime { ClockTime(parsing: text)! }
    private static let utc = TimeZone(identifier: "UTC")!
    private static let berlin = TimeZone(identifier: "Europe/Berlin")!

    /// Runs of `kind` asked for (started, or due with nothing ready), as moments on `zone`'s wall clock.
    private static func due(_ kind: AgentRunKind, in loop: Loop, zone: TimeZone) -> [String] {
        loop.asked.compactMap { at, action in
            switch action {
            case .startRun(let plan) where plan.kind == kind: UploadScheduleTests.wallClock(at, in: zone)
            case .noFilesReady(kind): UploadScheduleTests.wallClock(at, in: zone)
            default: nil
            }
        }
    }

    /// The last run the machine asked for.
    private static func lastRun(in loop: Loop) -> AgentRunPlan? {
        loop.asked.reversed().lazy.compactMap { _, action -> AgentRunPlan? in
            guard case .startRun(let plan) = action else { return nil }
            return plan
        }.first
    }

    /// Ticks once a minute from `start` through `end`; each run ends at once, settling its files.
    private static func minutes(_ loop: inout Loop, from start: Date, through end: Date) {
        var now = start
        while now <= end {
            loop.tick(at: now)
            loop.succeed()
            now.addTimeInterval(60)
        }
    }

    // MARK: - Schedule

    @Test func dailyScheduleFiresAcrossMidnightOncePerDay() {
        let settings = AgentStateMachine.Settings(
            schedule: .daily(Self.time("00:15")),
            timeZone: Self.utc,
            uploadOnStart: false
        )
        var loop = Loop(settings, at: Self.moment("2026-05-10 23:50 +00:00"), existing: ["old.log"])
        #expect(loop.runs.isEmpty, "the start-up scan's files wait for the schedule")
        loop.tick(at: Self.moment("2026-05-11 00:14:59 +00:00"))
        #expect(loop.runs.isEmpty)
        loop.tick(at: Self.moment("2026-05-11 00:15 +00:00"))
        #expect(loop.runs == ["scheduled old.log"])
        loop.succeed()
        Self.minutes(
            &loop,
            from: Self.moment("2026-05-11 00:16 +00:00"),
            through: Self.moment("2026-05-12 00:20 +00:00")
        )
        #expect(
            Self.due(.scheduled, in: loop, zone: Self.utc) == ["2026-05-11 00:15 +00:00", "2026-05-12 00:15 +00:00"]
        )
    }

    @Test func dailyScheduleInTheHourSpringForwardSkipsRunsOnceAtTheJump() {
        // Berlin, 2026-03-29: at 02:00 CET the clocks go to 03:00 CEST; 02:30 does not happen that night.
        let settings = AgentStateMachine.Settings(
            schedule: .daily(Self.time("02:30")),
            timeZone: Self.berlin,
            uploadOnStart: false
        )
        let start = Self.moment("2026-03-28 23:00 +01:00")
        var loop = Loop(settings, at: start)
        Self.minutes(&loop, from: start, through: Self.moment("2026-03-30 03:00 +02:00"))
        #expect(
            Self.due(.scheduled, in: loop, zone: Self.berlin) == ["2026-03-29 03:00 +02:00", "2026-03-30 02:30 +02:00"]
        )
    }

    @Test func dailyScheduleInTheHourFallBackRepeatsRunsOnceAtItsFirstOccurrence() {
        // Berlin, 2026-10-25: at 03:00 CEST the clocks go back to 02:00 CET; 02:30 happens twice that night.
        let settings = AgentStateMachine.Settings(
            schedule: .daily(Self.time("02:30")),
            timeZone: Self.berlin,
            uploadOnStart: false
        )
        let start = Self.moment("2026-10-24 23:00 +02:00")
        var loop = Loop(settings, at: start)
        Self.minutes(&loop, from: start, through: Self.moment("2026-10-26 03:00 +01:00"))
        #expect(
            Self.due(.scheduled, in: loop, zone: Self.berlin) == ["2026-10-25 02:30 +02:00", "2026-10-26 02:30 +01:00"]
        )
    }

    @Test func scheduledRunGoesOutsideOperationalHoursAndTakesTheWholeQueue() {
        let settings = AgentStateMachine.Settings(
            schedule: .daily(Self.time("22:00")),
            hours: OperationalHours(start: Self.time("09:00"), end: Self.time("16:00")),
            timeZone: Self.utc,
            uploadOnStart: false,
            batchUpload: false
        )
        var loop = Loop(settings, at: Self.moment("2026-11-23 20:00 +00:00"), existing: ["a.log"])
        loop.ready("b.log")
        loop.advance(60)
        #expect(loop.runs.isEmpty, "outside the hours ready files wait")
        loop.tick(at: Self.moment("2026-11-23 22:00:01 +00:00"))
        #expect(loop.runs == ["scheduled a.log,b.log"])
    }

    @Test func reloadPlacesTheScheduleAgainFromNow() {
        var settings = AgentStateMachine.Settings(
            schedule: .daily(Self.time("22:00")),
            timeZone: Self.utc,
            uploadOnStart: false
        )
        var loop = Loop(settings, at: Self.moment("2026-11-23 20:00 +00:00"), existing: ["a.log"])
        settings.schedule = .daily(Self.time("21:00"))
        loop.now = Self.moment("2026-11-23 20:30 +00:00")
        #expect(loop.machine.configApplied(settings, now: loop.now, sourcesChanged: false).isEmpty)
        loop.tick(at: Self.moment("2026-11-23 21:00 +00:00"))
        #expect(loop.runs == ["scheduled a.log"])
        loop.succeed()
        loop.tick(at: Self.moment("2026-11-23 22:00 +00:00"))
        #expect(Self.due(.scheduled, in: loop, zone: Self.utc) == ["2026-11-23 21:00 +00:00"])
    }

    // MARK: - Operational hours

    @Test func filesReadyOutsideHoursWaitAndGoWhenTheHoursOpen() {
        let settings = AgentStateMachine.Settings(
            hours: OperationalHours(start: Self.time("09:00"), end: Self.time("16:00")),
            timeZone: Self.utc,
            uploadOnStart: false
        )
        var loop = Loop(settings, at: Self.moment("2026-11-23 08:00 +00:00"))
        loop.ready("early.log")
        loop.tick(at: Self.moment("2026-11-23 08:59:59 +00:00"))
        #expect(loop.runs.isEmpty)
        loop.tick(at: Self.moment("2026-11-23 09:00 +00:00"))
        #expect(loop.runs == ["immediate early.log"])
        loop.succeed()

        // The end is outside: a file ready at 16:00 waits for the next morning.
        loop.tick(at: Self.moment("2026-11-23 16:00 +00:00"))
        loop.ready("late.log")
        loop.tick(at: Self.moment("2026-11-24 08:59 +00:00"))
        #expect(loop.runs.count == 1)
        loop.tick(at: Self.moment("2026-11-24 09:00 +00:00"))
        #expect(loop.runs == ["immediate early.log", "immediate late.log"])
    }

    @Test func filesThatCouldNotGoBeforeTheHoursClosedWaitForTheNextOpening() {
        let settings = AgentStateMachine.Settings(
            hours: OperationalHours(start: Self.time("09:00"), end: Self.time("16:00")),
            timeZone: Self.utc,
            uploadOnStart: false
        )
        var loop = Loop(settings, at: Self.moment("2026-11-23 15:59 +00:00"))
        loop.ledgerUp = false
        loop.tick()
        loop.ready("a.log")
        loop.ledgerUp = true
        loop.tick(at: Self.moment("2026-11-23 16:00 +00:00"))
        #expect(loop.machine.isLedgerConnected)
        #expect(loop.runs.isEmpty, "the hours closed while the ledger was away")
        loop.tick(at: Self.moment("2026-11-24 09:00 +00:00"))
        #expect(loop.runs == ["immediate a.log"])
    }

    @Test func hoursSpanningMidnightHoldTheNightAndNotTheirEnd() {
        let settings = AgentStateMachine.Settings(
            hours: OperationalHours(start: Self.time("22:00"), end: Self.time("06:00")),
            timeZone: Self.utc,
            uploadOnStart: false
        )
        var loop = Loop(settings, at: Self.moment("2026-11-23 23:00 +00:00"))
        loop.tick(at: Self.moment("2026-11-23 23:30 +00:00"))
        loop.ready("night.log")
        loop.tick()
        #expect(loop.runs == ["immediate night.log"])
        loop.succeed()

        loop.tick(at: Self.moment("2026-11-24 05:59 +00:00"))
        loop.ready("dawn.log")
        loop.tick()
        #expect(loop.runs.last == "immediate dawn.log")
        loop.succeed()

        loop.tick(at: Self.moment("2026-11-24 06:00 +00:00"))
        loop.ready("morning.log")
        loop.tick(at: Self.moment("2026-11-24 21:59 +00:00"))
        #expect(loop.runs.count == 2)
        loop.tick(at: Self.moment("2026-11-24 22:00 +00:00"))
        #expect(loop.runs.last == "immediate morning.log")
    }

    // MARK: - Start-up, batch upload

    @Test func uploadOnStartRunsTheStartUpScansFilesOnceTheLedgerIsReconciled() {
        let start = Self.moment("2026-11-23 12:00 +00:00")
        var loop = Loop(AgentStateMachine.Settings(timeZone: Self.utc), at: start, existing: ["a.log", "b.log"])
        #expect(loop.asked.map(\.action) == [.rescan(.startup)])
        #expect(loop.tick().prefix(2) == [.connect, .reconcile])
        #expect(loop.runs == ["startup a.log,b.log"])
    }

    @Test func aBacklogLargerThanOneRunIsTakenInTurnsOfBoundedSize() {
        let names = (0..<(AgentStateMachine.filesPerRun * 2 + 5)).map { "f\($0).log" }
        var loop = Loop(
            AgentStateMachine.Settings(timeZone: Self.utc),
            at: Self.moment("2026-11-23 12:00 +00:00"),
            existing: names
        )
        for _ in 0..<4 {
            loop.tick()
            loop.succeed()
            loop.advance(1)
        }
        let plans = loop.asked.compactMap { _, action -> AgentRunPlan? in
            guard case .startRun(let plan) = action else { return nil }
            return plan
        }
        #expect(plans.map(\.kind) == [.startup, .startup, .startup])
        #expect(plans.map(\.files.count) == [AgentStateMachine.filesPerRun, AgentStateMachine.filesPerRun, 5])
        let taken = plans.flatMap { $0.files.map(\.file) }
        #expect(Set(taken).count == names.count && taken.count == names.count, "every file once")
    }

    @Test func theNextTurnOfABacklogLeavesWhatTheLastTurnCouldNotUploadToItsBackoff() {
        let names = (0..<(AgentStateMachine.filesPerRun + 5)).map { "f\($0).log" }
        var loop = Loop(
            AgentStateMachine.Settings(timeZone: Self.utc),
            at: Self.moment("2026-11-23 12:00 +00:00"),
            existing: names
        )
        loop.tick()
        guard let first = Self.lastRun(in: loop) else {
            Issue.record("no first run")
            return
        }
        let failed = first.files.prefix(3).map { String(decoding: $0.file.relativePath, as: UTF8.self) }
        loop.succeed(leaving: failed)
        loop.advance(1)
        guard let second = Self.lastRun(in: loop), second != first else {
            Issue.record("no second run")
            return
        }
        let taken = Set(second.files.map { String(decoding: $0.file.relativePath, as: UTF8.self) })
        #expect(taken.count == 5 && taken.isDisjoint(with: failed), "the rest of the backlog, not the failures")
    }

    @Test func withoutUploadOnStartTheStartUpScansFilesWaitForANewFile() {
        let settings = AgentStateMachine.Settings(timeZone: Self.utc, uploadOnStart: false)
        var loop = Loop(settings, at: Self.moment("2026-11-23 12:00 +00:00"), existing: ["a.log"])
        loop.advance(60)
        #expect(loop.runs.isEmpty)
        loop.ready("b.log")
        loop.tick()
        #expect(loop.runs == ["immediate a.log,b.log"], "batch upload takes the whole queue")
    }

    @Test func withoutScanExistingFilesThereIsNoStartUpScanAndTheFirstTickRescans() {
        let settings = AgentStateMachine.Settings(timeZone: Self.utc, scanExistingFiles: false, rescanSeconds: 600)
        var loop = Loop(settings, at: Self.moment("2026-11-23 12:00 +00:00"))
        #expect(loop.asked.isEmpty)
        #expect(loop.tick().first == .rescan(.periodic))
        #expect(loop.advance(599).contains(.rescan(.periodic)) == false)
        #expect(loop.advance(1).first == .rescan(.periodic))
        loop.machine.rescanRequested()
        #expect(loop.advance(1).first == .rescan(.periodic))
    }

    @Test func immediateOnlyUploadTakesJustTheFilesThatBecameReady() {
        let settings = AgentStateMachine.Settings(timeZone: Self.utc, uploadOnStart: false, batchUpload: false)
        var loop = Loop(settings, at: Self.moment("2026-11-23 12:00 +00:00"), existing: ["old.log"])
        loop.ready("new.log")
        loop.tick()
        #expect(loop.runs == ["immediate new.log"])
    }

    @Test func filesReadyDuringARunWaitForTheNextOne() {
        let settings = AgentStateMachine.Settings(timeZone: Self.utc, uploadOnStart: false, batchUpload: false)
        var loop = Loop(settings, at: Self.moment("2026-11-23 12:00 +00:00"))
        loop.ready("a.log")
        loop.tick()
        loop.ready("b.log")
        loop.advance(5)
        #expect(loop.runs == ["immediate a.log"])
        loop.succeed()
        loop.advance(1)
        #expect(loop.runs == ["immediate a.log", "immediate b.log"])
    }

    // MARK: - Failures

    @Test func failedRunBacksOffAndAsksAgainWithTheSameKind() {
        let settings = AgentStateMachine.Settings(
            schedule: .daily(Self.time("22:00")),
            hours: OperationalHours(start: Self.time("09:00"), end: Self.time("16:00")),
            timeZone: Self.utc,
            uploadOnStart: false
        )
        var loop = Loop(settings, at: Self.moment("2026-11-23 20:00 +00:00"), existing: ["a.log"])
        loop.tick(at: Self.moment("2026-11-23 22:00 +00:00"))
        #expect(loop.runs == ["scheduled a.log"])

        // Jitter 0: half the ceiling, 15 s / 2 after the first failure, 30 s / 2 after the second.
        #expect(loop.machine.runFailed(now: loop.now, jitter: 0) == 7.5)
        #expect(loop.advance(7).contains(.reconcile), "what the failed run may have claimed is settled first")
        #expect(loop.runs.count == 1)
        loop.advance(0.5)
        #expect(loop.runs == ["scheduled a.log", "scheduled a.log"], "outside the hours, still scheduled")
        #expect(loop.machine.runFailed(now: loop.now, jitter: 1) == 30)
        loop.advance(29)
        #expect(loop.runs.count == 2)
        loop.advance(1)
        #expect(loop.runs.last == "scheduled a.log")
        loop.succeed()
        #expect(loop.machine.nextRunAllowed == .distantPast)
    }

    @Test func failedImmediateRunKeepsItsFilesAndFailedStartUpRunStaysPending() {
        let settings = AgentStateMachine.Settings(timeZone: Self.utc, batchUpload: false)
        var loop = Loop(settings, at: Self.moment("2026-11-23 12:00 +00:00"), existing: ["a.log"])
        loop.tick()
        #expect(loop.runs == ["startup a.log"])
        loop.machine.runFailed(now: loop.now, jitter: 0)
        loop.advance(7.5)
        #expect(loop.runs.last == "startup a.log")
        loop.succeed()

        loop.ready("b.log")
        loop.tick()
        #expect(loop.runs.last == "immediate b.log")
        loop.machine.runFailed(now: loop.now, jitter: 0)
        loop.advance(7.5)
        #expect(loop.runs.last == "immediate b.log")
    }

    @Test func unsettledFilesAreOfferedAgainAfterTheRetryBackoff() {
        let settings = AgentStateMachine.Settings(
            timeZone: Self.utc,
            uploadOnStart: false,
            batchUpload: false,
            retryRoundBackoff: Backoff(baseSeconds: 30, capSeconds: 900)
        )
        var loop = Loop(settings, at: Self.moment("2026-11-23 12:00 +00:00"))
        loop.ready("a.log", "b.log")
        loop.tick()
        #expect(loop.runs == ["immediate a.log,b.log"])
        loop.succeed(leaving: ["b.log"], jitter: 0)  // round 1: 30 s / 2
        loop.advance(14)
        #expect(loop.runs.count == 1)
        loop.advance(1)
        #expect(loop.runs.last == "immediate b.log")
        loop.succeed(leaving: ["b.log"], jitter: 1)  // round 2: 60 s
        loop.advance(59)
        #expect(loop.runs.count == 2)
        loop.advance(1)
        #expect(loop.runs.last == "immediate b.log")
        loop.succeed()
    }

    @Test func unsettledFilesDueOutsideHoursWaitForTheHours() {
        let settings = AgentStateMachine.Settings(
            hours: OperationalHours(start: Self.time("09:00"), end: Self.time("16:00")),
            timeZone: Self.utc,
            uploadOnStart: false,
            batchUpload: false
        )
        var loop = Loop(settings, at: Self.moment("2026-11-23 15:59 +00:00"))
        loop.ready("a.log")
        loop.tick()
        loop.succeed(leaving: ["a.log"], jitter: 0)
        loop.advance(60)
        #expect(loop.runs.count == 1)
        loop.tick(at: Self.moment("2026-11-24 09:00 +00:00"))
        #expect(loop.runs.last == "immediate a.log")
    }

    @Test func noRunWhileTheLedgerIsAwayOrBeforeReconciliation() {
        let settings = AgentStateMachine.Settings(timeZone: Self.utc, uploadOnStart: false, heartbeatSeconds: 60)
        var loop = Loop(settings, at: Self.moment("2026-11-23 12:00 +00:00"))
        loop.ledgerUp = false
        #expect(loop.tick() == [.connect])
        loop.ready("a.log")
        #expect(loop.advance(0.5).isEmpty, "half of a 2 s ceiling before the next attempt")
        #expect(loop.advance(0.5) == [.connect])
        #expect(loop.machine.connectFailures == 2)
        #expect(loop.runs.isEmpty)

        loop.ledgerUp = true
        loop.storeUp = false
        #expect(loop.advance(2) == [.connect, .reconcile] + Self.housekeeping)
        #expect(loop.machine.connectFailures == 0)
        #expect(loop.runs.isEmpty, "nothing is sent before what an earlier run left in flight is settled")
        // Asked again after seconds, not a minute: half of a 2 s ceiling, then of 4 s, then of 8 s.
        #expect(loop.advance(0.5).isEmpty)
        #expect(loop.advance(0.5) == [.reconcile])
        #expect(loop.advance(1.5).isEmpty)
        #expect(loop.advance(0.5) == [.reconcile])
        #expect(loop.machine.reconcileFailures == 3)
        loop.storeUp = true
        #expect(loop.advance(3.5).isEmpty)
        #expect(loop.runs.isEmpty)
        #expect(loop.advance(0.5).first == .reconcile)
        #expect(loop.machine.reconcileFailures == 0)
        #expect(loop.runs == ["immediate a.log"])
    }

    @Test func reconciliationBackoffGrowsToItsCap() {
        var machine = AgentStateMachine(settings: AgentStateMachine.Settings(timeZone: Self.utc), now: Date())
        let waits = (0..<10).map { _ in machine.reconciliationFailed(now: Date(), jitter: 1) }
        #expect(waits == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300])
    }

    @Test func aReconciliationIsAskedForAgainDailyButNotDuringARun() {
        let settings = AgentStateMachine.Settings(timeZone: Self.utc, uploadOnStart: false, heartbeatSeconds: 60)
        let start = Self.moment("2026-11-23 12:00 +00:00")
        var loop = Loop(settings, at: start)
        #expect(loop.tick().first == .connect)
        func reconciles() -> [Date] { loop.asked.filter { $0.action == .reconcile }.map(\.at) }
        #expect(reconciles() == [start])
        loop.tick(at: start.addingTimeInterval(86_399))
        #expect(reconciles() == [start])
        // A run is in progress when the day is over: the reconciliation waits for its end.
        loop.ready("a.log")
        loop.tick(at: start.addingTimeInterval(86_399.5))
        #expect(loop.machine.running != nil)
        loop.tick(at: start.addingTimeInterval(86_400))
        #expect(reconciles() == [start])
        loop.succeed()
        loop.tick(at: start.addingTimeInterval(86_401))
        #expect(reconciles() == [start, start.addingTimeInterval(86_401)])
        loop.tick(at: start.addingTimeInterval(2 * 86_400 + 1))
        #expect(reconciles().count == 3)
    }

    @Test func losingTheLedgerMidwayLeavesTheRestOfTheHousekeepingDue() {
        let settings = AgentStateMachine.Settings(
            timeZone: Self.utc,
            uploadOnStart: false,
            heartbeatSeconds: 60,
            ageDeletionAt: Self.time("02:00")
        )
        var loop = Loop(settings, at: Self.moment("2026-11-23 01:59 +00:00"))
        loop.tick()
        var due = loop.machine.tick(now: Self.moment("2026-11-23 02:00 +00:00"), queue: loop.queue)
        loop.now = Self.moment("2026-11-23 02:00 +00:00")
        #expect(due == [.sendHeartbeat, .runDeletion(.afterUpload), .runDeletion(.age), .runDeletion(.emergency)])
        // The heartbeat fails: the ledger is gone and the deletions were not applied.
        loop.machine.ledgerLost(now: loop.now, jitter: 0)
        for action in due.dropFirst() { loop.machine.notPerformed(action, now: loop.now) }
        due = loop.advance(1)
        #expect(due == [.connect, .runDeletion(.afterUpload), .runDeletion(.age), .runDeletion(.emergency)])
    }

    // MARK: - Housekeeping

    private static let housekeeping: [AgentAction] = [
        .sendHeartbeat, .runDeletion(.afterUpload), .runDeletion(.emergency),
    ]

    @Test func heartbeatAndDeletionPoliciesRunAtTheirTimes() {
        let settings = AgentStateMachine.Settings(
            timeZone: Self.berlin,
            uploadOnStart: false,
            heartbeatSeconds: 120,
            ageDeletionAt: Self.time("03:00")
        )
        let start = Self.moment("2026-11-23 12:00 +01:00")
        var loop = Loop(settings, at: start)
        #expect(loop.tick() == [.connect, .reconcile] + Self.housekeeping)
        for _ in 0..<(48 * 60 * 2) { loop.advance(30) }  // two days in steps of 30 s
        func times(_ action: AgentAction) -> [Date] { loop.asked.filter { $0.action == action }.map(\.at) }

        // The heartbeat every 120 s, the after-upload deletion every min(120, 60) s, the disk check every 30 s.
        #expect(times(.sendHeartbeat).count == 48 * 30 + 1)
        #expect(
            zip(times(.sendHeartbeat), times(.sendHeartbeat).dropFirst()).allSatisfy { $1.timeIntervalSince($0) == 120 }
        )
        #expect(times(.runDeletion(.afterUpload)).count == 48 * 60 + 1)
        #expect(times(.runDeletion(.emergency)).count == 48 * 120 + 1)
        // The age deletion at 03:00 in the agent's zone, once a day.
        #expect(
            times(.runDeletion(.age)).map { UploadScheduleTests.wallClock($0, in: Self.berlin) } == [
                "2026-11-24 03:00 +01:00", "2026-11-25 03:00 +01:00",
            ]
        )
    }

    @Test func afterUploadDeletionLooksAtOnceWhenARunEnds() {
        let settings = AgentStateMachine.Settings(timeZone: Self.utc, uploadOnStart: false, heartbeatSeconds: 60)
        var loop = Loop(settings, at: Self.moment("2026-11-23 12:00 +00:00"))
        loop.tick()
        loop.ready("a.log")
        #expect(loop.advance(10) == [.startRun(loop.machine.running!)])
        loop.succeed()
        #expect(loop.advance(1) == [.runDeletion(.afterUpload)])
    }

    @Test func nothingIsDeletedAndNoHeartbeatSentWithoutTheLedger() {
        let settings = AgentStateMachine.Settings(timeZone: Self.utc, ageDeletionAt: Self.time("02:00"))
        var loop = Loop(settings, at: Self.moment("2026-11-23 01:00 +00:00"))
        loop.ledgerUp = false
        for _ in 0..<(2 * 60 * 60) { loop.advance(1) }
        #expect(loop.asked.allSatisfy { !$0.action.needsLedger })
    }

    // MARK: - Reload

    @Test func changedSourcesDropWhatWasQueuedForThemAndRescan() {
        let settings = AgentStateMachine.Settings(timeZone: Self.utc, uploadOnStart: false, batchUpload: false)
        var loop = Loop(settings, at: Self.moment("2026-11-23 12:00 +00:00"))
        loop.ready("a.log")
        loop.tick()
        let run = loop.machine.running!
        loop.ready("b.log")
        #expect(loop.machine.configApplied(settings, now: loop.now, sourcesChanged: true) == [.rescan(.sourcesChanged)])
        loop.machine.scanFinished(.sourcesChanged, newlyReady: [], now: loop.now)
        #expect(!loop.machine.isCurrent(run))
        loop.machine.runFailed(now: loop.now, jitter: 0)
        loop.advance(60)
        #expect(loop.runs == ["immediate a.log"], "neither the stale run's files nor the dropped backlog go up")
    }

    @Test func aReloadThatChangesTheLedgerConnectsAgainAtOnce() {
        let settings = AgentStateMachine.Settings(timeZone: Self.utc, uploadOnStart: false)
        var loop = Loop(settings, at: Self.moment("2026-11-23 12:00 +00:00"))
        loop.tick()
        #expect(loop.machine.isLedgerConnected && loop.machine.isReconciled)
        loop.machine.ledgerReset()
        #expect(loop.advance(1) == [.connect])
        #expect(loop.machine.isReconciled, "the same device's rows were settled already")
    }
}
