internal import CCurl
import Foundation
import Synchronization

/// An event loop that carries many HTTP transfers at once on one thread: a libcurl multi handle, and the Swift
/// tasks that wait on its transfers.
///
/// A task started with `spawn` runs its steps on the thread that called `run` (the loop is the task's executor);
/// each `perform` adds an easy handle to the multi handle and suspends the task until libcurl reports the
/// transfer done, so hundreds of requests are in flight from one thread, over connections the multi handle
/// keeps and reuses. `sleep` suspends a task for a while without holding the thread. The corresponding libcurl
/// object is `CURLM`; `deinit` calls `curl_multi_cleanup`.
///
/// `@unchecked Sendable`: only `enqueue` (the task executor's entry, any thread) touches `inbox`, under its
/// mutex, and wakes the loop with `curl_multi_wakeup`, which may be called from any thread; everything else is
/// used by the loop's own thread alone.
package final class TransferLoop: TaskExecutor, @unchecked Sendable {
    private let multi: UnsafeMutableRawPointer
    private let inbox = Mutex<[UnownedJob]>([])
    private var owner: pthread_t?
    private var transfers: [UnsafeMutableRawPointer: Pending] = [:]
    private var idleHandles: [UnsafeMutableRawPointer] = []
    /// Suspended `sleep` calls, by deadline.
    private var timers: [Timer] = []
    private var tasks = 0

    /// libcurl's receive buffer per transfer, its smallest: S3's answers to PutObject, UploadPart and HeadObject
    /// are headers and at most a short document, and with a thousand transfers in flight libcurl's default of
    /// 16 KiB each would be 16 MiB.
    static let receiveBufferBytes = 1024

    /// Bodies above this many bytes are cut (S3 error and listing documents are far smaller).
    package var maximumResponseBytes = 64 * 1024 * 1024
    /// A PEM file of certificate authorities to trust instead of the system's; `nil` keeps libcurl's default.
    package var caBundle: String?

    private struct Pending {
        var transfer: CurlTransfer
        var done: (Result<HTTPResponse, HTTPError>) -> Void
    }

    private struct Timer {
        var deadline: ContinuousClock.Instant
        var wakeEarly: () -> Bool
        var resume: () -> Void
    }

    package init() throws(HTTPError) {
        Curl.globalInit()
        guard let multi = curl_multi_init() else {
            throw HTTPError(kind: .invalidRequest, message: "curl_multi_init failed", curlCode: -1)
        }
        self.multi = multi
    }

    deinit {
        for handle in transfers.keys {
            curl_multi_remove_handle(multi, handle)
            curl_easy_cleanup(handle)
        }
        for handle in idleHandles { curl_easy_cleanup(handle) }
        curl_multi_cleanup(multi)
    }

    // MARK: - The executor

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        inbox.withLock { $0.append(job) }
        if let owner, pthread_equal(owner, pthread_self()) != 0 { return }  // the loop looks at the inbox next
        curl_multi_wakeup(multi)
    }

    /// Starts `operation` as a task whose steps run on this loop's thread; `run` returns once every such task
    /// has ended. Call it before `run` or from a task of this loop.
    package func spawn(_ operation: @escaping @Sendable () async -> Void) {
        tasks += 1
        Task(executorPreference: self) {
            await operation()
            self.tasks -= 1  // the task's last step runs on the loop's thread
        }
    }

    /// Runs the loop on the calling thread until every task `spawn` started has ended.
    package func run() {
        owner = pthread_self()
        defer { owner = nil }
        var running: Int32 = 0
        while true {
            runJobs()
            fireTimers()
            if tasks == 0, inbox.withLock({ $0.isEmpty }) { return }
            curl_multi_perform(multi, &running)
            var code = CURLE_OK
            while let handle = ccurl_multi_next_done(multi, &code) {
                curl_multi_remove_handle(multi, handle)
                guard let pending = transfers.removeValue(forKey: handle) else { continue }
                let result = pending.transfer.result(code)
                idleHandles.append(handle)
                pending.done(result)
            }
            if inbox.withLock({ $0.isEmpty }) {
                curl_multi_poll(multi, nil, 0, pollMilliseconds(), nil)
            }
        }
    }

    private func runJobs() {
        // Jobs the ones run here enqueue wait for the next turn, after libcurl had its turn.
        let jobs = inbox.withLock { jobs in
            defer { jobs.removeAll(keepingCapacity: true) }
            return jobs
        }
        for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
    }

    private func fireTimers() {
        guard !timers.isEmpty else { return }
        let now = ContinuousClock.now
        var index = 0
        while index < timers.count {
            if timers[index].deadline <= now || timers[index].wakeEarly() {
                timers.remove(at: index).resume()
            } else {
                index += 1
            }
        }
    }

    /// How long `curl_multi_poll` may wait: until the next timer, at most 50 ms while a timer may wake early
    /// (a stop), and 1 s otherwise (libcurl shortens it to its own next timeout).
    private func pollMilliseconds() -> Int32 {
        guard let next = timers.map(\.deadline).min() else { return 1000 }
        let left = next - ContinuousClock.now
        let milliseconds = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
        return Int32(max(0, min(50, milliseconds)))
    }

    // MARK: - Transfers and waits

    /// Sends `request` on the loop's multi handle and suspends until the whole response arrived. Call it from a
    /// task `spawn` started.
    ///
    /// - Throws: `HTTPError` when no HTTP response arrived; an HTTP error status is a response, not a throw.
    package func perform(_ request: HTTPRequest) async throws(HTTPError) -> HTTPResponse {
        if let limiter = request.bandwidth, request.body.length > 0, limiter.limitsNow {
            guard request.body.isInMemory else {
                // A streamed body waits for the cap piece by piece inside libcurl's read callback, which would
                // hold this loop's thread and every transfer on it: it goes on a blocking transfer of its own.
                return try await performBlocking(request)
            }
            try await waitForBandwidth(request, limiter)
        }
        let result = await withCheckedContinuation { continuation in
            start(request) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// A body from memory goes out in one piece once the cap lets its bytes go; the task waits on a timer, not
    /// the thread.
    @inline(never)  // as `performBlocking`: no part of every transfer's frame
    private func waitForBandwidth(_ request: HTTPRequest, _ limiter: BandwidthLimiter) async throws(HTTPError) {
        await sleep(limiter.delay(sending: Int(request.body.length)), wakeEarly: { request.shouldEnd?() ?? false })
        if request.shouldEnd?() == true {
            throw HTTPError(kind: .ended, message: "ended before the body was sent", curlCode: 0)
        }
    }

    private func start(_ request: HTTPRequest, done: @escaping (Result<HTTPResponse, HTTPError>) -> Void) {
        guard let handle = idleHandles.popLast() ?? curl_easy_init() else {
            done(.failure(HTTPError(kind: .invalidRequest, message: "curl_easy_init failed", curlCode: -1)))
            return
        }
        let transfer = CurlTransfer(
            handle: handle,
            request: request,
            maximumResponseBytes: maximumResponseBytes,
            caBundle: caBundle,
            receiveBufferBytes: Self.receiveBufferBytes
        )
        guard transfer.configured, curl_multi_add_handle(multi, handle) == CURLM_OK else {
            idleHandles.append(handle)
            done(transfer.result(CURLE_BAD_FUNCTION_ARGUMENT))
            return
        }
        transfers[handle] = Pending(transfer: transfer, done: done)
    }

    /// Suspends the calling task for `seconds`, or until `wakeEarly` says so (it is asked every 50 ms).
    package func sleep(_ seconds: Double, wakeEarly: @escaping () -> Bool = { false }) async {
        guard seconds > 0 else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            timers.append(
                Timer(
                    deadline: .now + .milliseconds(Int(seconds * 1000)),
                    wakeEarly: wakeEarly,
                    resume: { continuation.resume() }
                )
            )
        }
    }

    /// Runs `work` on a thread of its own (blocking work: a ledger round trip, a large file's checksums and
    /// blocking requests) and suspends the calling task until it returns.
    package func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
        }
    }

    /// `request` on a fresh blocking handle on a thread of its own (no connection reuse: the cap, not the
    /// handshake, is what limits such a transfer).
    @inline(never)
    private func performBlocking(_ request: HTTPRequest) async throws(HTTPError) -> HTTPResponse {
        /// The request is handed to the other thread and not touched here until that thread is done with it.
        struct HandedOver: @unchecked Sendable { let request: HTTPRequest }
        let handedOver = HandedOver(request: request)
        let (caBundle, maximumResponseBytes) = (self.caBundle, self.maximumResponseBytes)
        let result: Result<HTTPResponse, HTTPError> = await offload {
            do throws(HTTPError) {
                let easy = try CurlEasy()
                easy.caBundle = caBundle
                easy.maximumResponseBytes = maximumResponseBytes
                return .success(try easy.perform(handedOver.request))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Keeps at most `count` connections open between transfers (`CURLMOPT_MAXCONNECTS`; libcurl's default is
    /// four per easy handle it has seen, so a thousand transfers at a peak would leave thousands open once the
    /// number in flight comes down).
    package func limitConnections(to count: Int) {
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, max(1, count))
    }

    /// Transfers in flight on this loop.
    package var transfersInFlight: Int { transfers.count }
}
