import Foundation
import Synchronization

/// How many bytes per second request bodies may send, by time of day: `8M` all day, or a timetable such as
/// `08:00,2M 19:00,off` (2 MiB/s from 08:00, no limit from 19:00 until 08:00 the next day).
///
/// A rate is a whole number of bytes, or a number with `K`, `M` or `G` (KiB, MiB, GiB; `KiB`, `MB`… read the
/// same); `off` is no limit. Times are `HH:MM` in the machine's local time, in increasing order; before the first
/// one of a day, the last entry of the previous day applies.
package struct BandwidthSchedule: Sendable, Equatable, CustomStringConvertible {
    package struct Entry: Sendable, Equatable {
        /// Minutes after midnight.
        package var minute: Int
        /// Bytes per second; nil for no limit.
        package var bytesPerSecond: Int64?
    }

    package var entries: [Entry]

    /// The slowest cap this accepts: below it a transfer would look stalled to the link's stall check.
    package static let minimumBytesPerSecond: Int64 = 1024

    /// Parses a rate or a timetable; the error says what is wrong in one line.
    package init(parsing text: String) throws(BandwidthScheduleError) {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard !words.isEmpty else { throw BandwidthScheduleError("is empty (use a rate such as 8M, or off)") }
        if words.count == 1, !words[0].contains(",") {
            entries = [Entry(minute: 0, bytesPerSecond: try Self.rate(words[0]))]
            return
        }
        var entries: [Entry] = []
        for word in words {
            let parts = word.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2, let minute = Self.minuteOfDay(parts[0]) else {
                throw BandwidthScheduleError("'\(word)' is not HH:MM,RATE (for example 08:00,2M or 19:00,off)")
            }
            if let last = entries.last, minute <= last.minute {
                throw BandwidthScheduleError("'\(parts[0])' is not later than the time before it")
            }
            entries.append(Entry(minute: minute, bytesPerSecond: try Self.rate(parts[1])))
        }
        self.entries = entries
    }

    /// The cap at `minute` minutes after midnight (local time); nil for no limit.
    package func bytesPerSecond(atMinute minute: Int) -> Int64? {
        (entries.last(where: { $0.minute <= minute }) ?? entries.last)?.bytesPerSecond
    }

    /// Whether any entry limits at all.
    package var limits: Bool { entries.contains { $0.bytesPerSecond != nil } }

    package var description: String {
        if entries.count == 1, entries[0].minute == 0 { return Self.text(entries[0].bytesPerSecond) }
        return entries.map {
            String(format: "%02d:%02d,", $0.minute / 60, $0.minute % 60) + Self.text($0.bytesPerSecond)
        }
        .joined(separator: " ")
    }

    /// `2M` → 2 MiB/s in bytes.
    private static func rate(_ word: String) throws(BandwidthScheduleError) -> Int64? {
        if word.lowercased() == "off" { return nil }
        var digits = Substring(word)
        var unit: Int64 = 1
        for (suffixes, multiplier) in [
            (["kib", "kb", "k"], 1 << 10), (["mib", "mb", "m"], 1 << 20), (["gib", "gb", "g"], 1 << 30),
        ] {
            if let suffix = suffixes.first(where: { word.lowercased().hasSuffix($0) }) {
                digits = word.dropLast(suffix.count)
                unit = Int64(multiplier)
                break
            }
        }
        if unit == 1, word.lowercased().hasSuffix("b") { digits = word.dropLast() }
        guard let number = Double(digits), number.isFinite, number > 0, digits.allSatisfy({ $0.isNumber || $0 == "." })
        else { throw BandwidthScheduleError("'\(word)' is not a rate (bytes per second, or with K, M or G; or off)") }
        let bytes = Int64((number * Double(unit)).rounded())
        guard bytes >= minimumBytesPerSecond else {
            throw BandwidthScheduleError("'\(word)' is below the smallest cap, 1K (1,024 bytes per second)")
        }
        return bytes
    }

    private static func minuteOfDay(_ text: String) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isNumber) }),
            let hours = Int(parts[0]), let minutes = Int(parts[1]), hours < 24, minutes < 60
        else { return nil }
        return hours * 60 + minutes
    }

    private static func text(_ rate: Int64?) -> String {
        guard let rate else { return "off" }
        for (suffix, unit) in [("G", Int64(1) << 30), ("M", 1 << 20), ("K", 1 << 10)] where rate % unit == 0 {
            return "\(rate / unit)\(suffix)"
        }
        return String(rate)
    }
}

/// Why a `max_bandwidth` value was refused.
package struct BandwidthScheduleError: Error, Sendable, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}

/// A token bucket: bytes may go out at `rate` per second, with up to `burst` saved up while idle. Senders
/// reserve what they are about to send and wait the time it returns, so many transfers share one rate in the
/// order they asked. Pure arithmetic on the times it is given (tests drive it with their own clock).
package struct TokenBucket: Sendable {
    /// Bytes that may go at once; negative while senders are waiting on reservations already made.
    private var tokens: Double = 0
    private var updatedAt: Double?

    package init() {}

    /// Reserves `bytes` at time `now` (seconds on a monotonic clock) under `rate` bytes per second with
    /// `burst` bytes of allowance; returns how many seconds the sender waits before sending them.
    package mutating func reserve(_ bytes: Int, rate: Int64, burst: Int64, now: Double) -> Double {
        // A fresh bucket starts with its allowance: the first piece goes at once.
        let elapsed = updatedAt.map { max(0, now - $0) } ?? .infinity
        tokens = min(Double(burst), tokens + elapsed * Double(rate))
        updatedAt = now
        tokens -= Double(bytes)
        return tokens >= 0 ? 0 : -tokens / Double(rate)
    }

    /// Forgets reservations and savings (the cap changed, or was lifted).
    package mutating func reset() {
        tokens = 0
        updatedAt = nil
    }
}

/// The cap `upload.max_bandwidth` sets on every request body the process sends, shared by all its transfers
/// (single PUTs and parts alike): each piece of a body reserves its bytes and the transfer waits its turn.
package final class BandwidthLimiter: Sendable {
    package let schedule: BandwidthSchedule
    private let state = Mutex(State())
    private let timeZone: TimeZone

    /// The bucket, and the cap it was filled at: the timetable is read once a second, not for every piece.
    private struct State {
        var bucket = TokenBucket()
        var rate: Int64?
        var rateReadAt: UInt64?
    }

    package init(schedule: BandwidthSchedule, timeZone: TimeZone = .current) {
        self.schedule = schedule
        self.timeZone = timeZone
    }

    /// The one limiter of this process for `schedule`: sessions one after the other (the agent's runs) share
    /// it, and a changed schedule (a reloaded configuration) replaces it.
    package static func shared(_ schedule: BandwidthSchedule) -> BandwidthLimiter {
        current.withLock { limiter in
            if let limiter, limiter.schedule == schedule { return limiter }
            let fresh = BandwidthLimiter(schedule: schedule)
            limiter = fresh
            return fresh
        }
    }
    private static let current = Mutex<BandwidthLimiter?>(nil)

    /// Whether a cap applies now (the timetable may say `off` for this time of day).
    package var limitsNow: Bool { state.withLock { currentRate(&$0, now: Self.uptime()) } != nil }

    /// How much of `count` bytes a transfer sends before its next reservation: small pieces under a cap keep
    /// many transfers taking turns (none waits long enough to look stalled), large enough not to cost a lock
    /// per few bytes; all of them without a cap.
    package func piece(upTo count: Int) -> Int {
        guard let rate = state.withLock({ currentRate(&$0, now: Self.uptime()) }) else { return count }
        return min(count, Self.pieceBytes(rate))
    }

    /// Reserves `bytes` and returns how many seconds to wait before sending them (zero when there is no cap now).
    package func delay(sending bytes: Int) -> Double {
        let now = Self.uptime()
        return state.withLock { state in
            guard let rate = currentRate(&state, now: now) else { return 0 }
            return state.bucket.reserve(bytes, rate: rate, burst: Int64(Self.pieceBytes(rate)), now: now)
        }
    }

    private static func pieceBytes(_ rate: Int64) -> Int { Int(min(64 * 1024, max(1024, rate / 256))) }

    private static func uptime() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// The cap now, read from the timetable at most once a second; a changed cap starts the bucket afresh.
    private func currentRate(_ state: inout State, now: Double) -> Int64? {
        let second = UInt64(now)
        guard state.rateReadAt != second else { return state.rate }
        state.rateReadAt = second
        let rate = schedule.bytesPerSecond(atMinute: minuteOfDay(Date()))
        if rate != state.rate {
            state.bucket.reset()
            state.rate = rate
        }
        return rate
    }

    private func minuteOfDay(_ date: Date) -> Int {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.hour, .minute], from: date)
        return (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
    }
}
