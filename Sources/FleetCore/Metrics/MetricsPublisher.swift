import FleetAWS
import FleetSystem
import Foundation
import Logging
import Synchronization

/// Collects the agent's metrics and sends them to CloudWatch in the background, never holding up uploads.
///
/// `record` only appends to a bounded buffer (when it is full the oldest data are dropped and counted). One
/// serial queue sends the buffer every `flushInterval` seconds, or as soon as it holds `flushThreshold` data,
/// in requests of at most 1000 data. A failed request is logged (a warning at most every `warningInterval`
/// seconds, debug in between) and counted; its data go back into the buffer for the next flush.
package final class MetricsPublisher: Sendable {
    /// What the publisher has done so far.
    package struct Statistics: Sendable, Equatable {
        /// Data handed to `record`.
        package var recorded = 0
        /// Data CloudWatch accepted.
        package var sent = 0
        /// Data dropped because the buffer was full.
        package var dropped = 0
        /// Requests that failed.
        package var failures = 0
        /// The class of the last failure, until a request succeeds again.
        package var lastFailure: CloudWatchError.Kind?
        /// Data waiting for the next flush.
        package var pending = 0
    }

    private struct State {
        var buffer: [MetricDatum] = []
        var statistics = Statistics()
        var flushQueued = false
        var stopped = false
        var lastWarning: Date?
        var unreportedFailures = 0
    }

    private let client: CloudWatchClient
    private let logger: Logger
    private let capacity: Int
    private let flushThreshold: Int
    private let flushInterval: Double
    private let warningInterval: Double
    private let now: @Sendable () -> Date
    private let queue = DispatchQueue(label: "fleet.metrics")
    private let state = Mutex(State())

    /// Creates the publisher and starts its periodic flush.
    ///
    /// - Parameters:
    ///   - client: Where the data go.
    ///   - flushInterval: Seconds between flushes; default: `metrics.cloudwatch.flush_seconds`'s.
    ///   - flushThreshold: A flush starts as soon as this many data wait; default 20.
    ///   - capacity: The most data kept while CloudWatch cannot be reached; default 10 000.
    ///   - warningInterval: At most one warning about failed requests per this many seconds; default 300.
    ///   - now: The clock for data timestamps and signatures.
    ///   - logger: For failures (`warning`, rate-limited) and sends (`debug`).
    package init(
        client: CloudWatchClient,
        flushInterval: Double = ResolvedConfig.Metrics.CloudWatch.defaultFlushSeconds,
        flushThreshold: Int = 20,
        capacity: Int = 10_000,
        warningInterval: Double = 300,
        now: @escaping @Sendable () -> Date = Date.init,
        logger: Logger
    ) {
        precondition(flushInterval > 0 && flushThreshold > 0 && capacity > 0)
        self.client = client
        self.flushInterval = flushInterval
        self.flushThreshold = flushThreshold
        self.capacity = capacity
        self.warningInterval = warningInterval
        self.now = now
        var logger = logger
        logger[metadataKey: "cloudwatch.namespace"] = "\(client.namespace)"
        self.logger = logger
        scheduleTick()
    }

    package var statistics: Statistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.pending = state.buffer.count
            return statistics
        }
    }

    // MARK: - Recording

    /// Records one upload run: `BytesUploaded`, `FileCount` and `FailureCount`, at the current time.
    package func record(uploadedBytes: Int64, files: Int, failures: Int) {
        let time = now()
        append([
            MetricDatum(.bytesUploaded, Double(uploadedBytes), at: time),
            MetricDatum(.fileCount, Double(files), at: time),
            MetricDatum(.failureCount, Double(failures), at: time),
        ])
    }

    /// Records `DiskUsagePercent` (0…100) at the current time.
    package func record(diskUsagePercent: Double) {
        append([MetricDatum(.diskUsagePercent, min(100, max(0, diskUsagePercent)), at: now())])
    }

    private func append(_ data: [MetricDatum]) {
        let startFlush = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.statistics.recorded += data.count
            state.buffer += data
            keepWithinCapacity(&state)
            guard state.buffer.count >= flushThreshold, !state.flushQueued else { return false }
            state.flushQueued = true
            return true
        }
        if startFlush { queue.async { self.send() } }
    }

    /// Drops the oldest data beyond `capacity`.
    private func keepWithinCapacity(_ state: inout State) {
        let excess = state.buffer.count - capacity
        guard excess > 0 else { return }
        state.buffer.removeFirst(excess)
        state.statistics.dropped += excess
    }

    // MARK: - Flushing

    /// Sends what the buffer holds now and waits until that is done; failures are logged and counted, not
    /// thrown. Must not be called from the publisher's own queue.
    package func flush() {
        queue.sync { send() }
    }

    /// Stops the periodic flush and sends what is left, waiting at most `timeout` seconds; data still unsent
    /// then are abandoned. Later `record` calls do nothing.
    package func shutdown(timeout: Double) {
        let alreadyStopped = state.withLock { state in
            defer { state.stopped = true }
            return state.stopped
        }
        guard !alreadyStopped else { return }
        let done = DispatchSemaphore(value: 0)
        queue.async {
            self.send()
            done.signal()
        }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            logger.warning(
                "metrics not sent before stopping; abandoning them",
                metadata: ["metrics.pending": "\(statistics.pending)"]
            )
        }
    }

    private func scheduleTick() {
        queue.asyncAfter(deadline: .now() + flushInterval) { [weak self] in
            guard let self, !self.state.withLock({ $0.stopped }) else { return }
            self.send()
            self.scheduleTick()
        }
    }

    /// Runs on `queue`: sends the buffer batch by batch; what a failed request did not send goes back in front
    /// of what was recorded meanwhile, and waits for the next flush.
    private func send() {
        let data = state.withLock { state in
            state.flushQueued = false
            defer { state.buffer.removeAll() }
            return state.buffer
        }
        guard !data.isEmpty else { return }
        let curl: CurlEasy
        do {
            curl = try CurlEasy()
        } catch {
            failed(CloudWatchError(error), unsent: data[...])
            return
        }
        for batch in CloudWatchClient.batches(data) {
            do throws(CloudWatchError) {
                try client.put(batch, with: curl, at: now())
            } catch {
                failed(error, unsent: data[batch.startIndex...])
                return
            }
            let recovered = state.withLock { state in
                state.statistics.sent += batch.count
                defer {
                    state.statistics.lastFailure = nil
                    state.unreportedFailures = 0
                    state.lastWarning = nil
                }
                return state.statistics.lastFailure != nil
            }
            if recovered { logger.notice("metrics delivered again") }
            logger.debug("metrics sent", metadata: ["metrics.count": "\(batch.count)"])
        }
    }

    private func failed(_ error: CloudWatchError, unsent: ArraySlice<MetricDatum>) {
        let time = now()
        let (warn, suppressed) = state.withLock { state -> (Bool, Int) in
            state.buffer = Array(unsent) + state.buffer
            keepWithinCapacity(&state)
            state.statistics.failures += 1
            state.statistics.lastFailure = error.kind
            if let last = state.lastWarning, time.timeIntervalSince(last) < warningInterval {
                state.unreportedFailures += 1
                return (false, 0)
            }
            state.lastWarning = time
            defer { state.unreportedFailures = 0 }
            return (true, state.unreportedFailures)
        }
        var metadata: Logger.Metadata = [
            "error": "\(error)", "error.class": "\(error.kind.rawValue)", "metrics.pending": "\(statistics.pending)",
        ]
        if suppressed > 0 { metadata["failures.since_last_warning"] = "\(suppressed)" }
        logger.log(
            level: warn ? .warning : .debug,
            "metrics not sent to CloudWatch; trying again at the next flush",
            metadata: metadata
        )
    }
}
