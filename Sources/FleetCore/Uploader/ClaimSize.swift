/// How many files one claim asks the ledger for: at least `batchSize`, at least the files in flight, and at
/// least the files the workers took in the last full second (up to `largest`).
///
/// The run's claims and its result batches share one connection. With the ledger a round trip of 100 ms away,
/// claims of a few hundred files at 1,500 files a second spend most of that connection's time travelling;
/// claims of about a second's files take one round trip a second, whatever the distance.
///
/// Pure logic over the instants it is given (`JobSource` gives it the clock's).
struct ClaimSize {
    let batchSize: Int
    /// The most a claim grows to with the rate (more would only hold files away from other processes).
    let largest: Int
    private var windowStart: ContinuousClock.Instant
    private var takenInWindow = 0
    /// Files taken per second over the last full window of a second or more.
    private(set) var perSecond = 0

    init(batchSize: Int, largest: Int = 1_024, now: ContinuousClock.Instant) {
        self.batchSize = batchSize
        self.largest = max(batchSize, largest)
        windowStart = now
    }

    /// A worker took a file at `now`.
    mutating func taken(at now: ContinuousClock.Instant) {
        takenInWindow += 1
        let elapsed = windowStart.duration(to: now)
        guard elapsed >= .seconds(1) else { return }
        perSecond = Int((Double(takenInWindow) / elapsed.inSeconds).rounded())
        windowStart = now
        takenInWindow = 0
    }

    /// The size of the next claim when `inFlight` files are kept in flight.
    func files(inFlight: Int) -> Int { max(batchSize, inFlight, min(perSecond, largest)) }
}
