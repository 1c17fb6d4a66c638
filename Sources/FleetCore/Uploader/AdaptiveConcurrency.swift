import Foundation

/// How many files to keep in flight when `upload.workers` is `auto`: pure logic over the completions and the
/// signs of congestion it is told of, with the time passed in (tests drive it with their own instants).
///
/// It measures files finished per second over intervals of at least a second (longer until enough files
/// finished to say something). While each raise pays (10 % more files per second than the interval before), it
/// doubles the level; once a raise no longer pays it steps back to the level before it and holds there, probing
/// an eighth more every `probeIntervals` intervals. Throttling
/// (503 SlowDown, 429), a timeout or a reset takes a quarter off at once and ends the doubling. A level that
/// stays put for `settleIntervals` intervals is the level it settled on.
package struct AdaptiveConcurrency: Sendable {
    /// Where `auto` starts. Higher would save a far run a second or two of doubling, but on a thin uplink it
    /// would hold that many files' bytes in memory (files up to 256 KiB are sent from memory) and split the link
    /// that many ways from the first second.
    package static let initialLevel = 64
    /// The most `auto` keeps in flight.
    package static let maximumLevel = 1024
    /// The fewest `auto` keeps in flight, however congested the link.
    package static let minimumLevel = 1
    static let minimumInterval: Duration = .seconds(1)
    /// An interval ends early only once this many files finished in it (or after `longestInterval`).
    static let enoughFiles = 8
    static let longestInterval: Duration = .seconds(5)
    static let probeIntervals = 5
    static let settleIntervals = 3

    package let maximum: Int
    package private(set) var level: Int
    /// The level it settled on; `nil` while it is still searching.
    package private(set) var settled: Int?

    private var doubling = true
    private var intervalStart: ContinuousClock.Instant
    private var finished = 0
    private var congested = false
    /// The level and throughput of the last interval measured.
    private var previous: (level: Int, perSecond: Double)?
    private var unchanged = 0
    private var sinceProbe = 0

    package init(maximum: Int = maximumLevel, initial: Int = initialLevel, now: ContinuousClock.Instant) {
        self.maximum = max(1, maximum)
        level = min(max(1, initial), self.maximum)
        intervalStart = now
    }

    /// A file finished (uploaded, or failed for good). Returns true when the level changed.
    package mutating func fileFinished(at now: ContinuousClock.Instant) -> Bool {
        finished += 1
        return endIntervalIfDue(at: now)
    }

    /// A request was throttled (503 SlowDown, 429), timed out or reset. Returns true when the level changed.
    package mutating func congestion(at now: ContinuousClock.Instant) -> Bool {
        congested = true
        return endIntervalIfDue(at: now)
    }

    private mutating func endIntervalIfDue(at now: ContinuousClock.Instant) -> Bool {
        let elapsed = now - intervalStart
        guard elapsed >= Self.minimumInterval else { return false }
        guard congested || finished >= Self.enoughFiles || elapsed >= Self.longestInterval else { return false }
        let perSecond = Double(finished) / elapsed.inSeconds
        let before = level
        if congested {
            level = max(Self.minimumLevel, min(level - 1, level * 3 / 4))
            doubling = false
            previous = nil
        } else if let previous, level > previous.level {
            // The last interval ran at a raised level: did the raise pay?
            if perSecond >= previous.perSecond * 1.1 {
                raise()
            } else {
                doubling = false
                level = previous.level
            }
            self.previous = (before, perSecond)
        } else {
            if previous == nil || doubling {
                raise()
            } else {
                sinceProbe += 1
                if sinceProbe >= Self.probeIntervals { raise() }
            }
            previous = (before, perSecond)
        }
        if level != before { sinceProbe = 0 }
        unchanged = level == before ? unchanged + 1 : 0
        if unchanged >= Self.settleIntervals { settled = level }
        intervalStart = now
        finished = 0
        congested = false
        return level != before
    }

    private mutating func raise() {
        level = min(maximum, doubling ? level * 2 : level + max(1, level / 8))
    }
}
