import Foundation

/// A proxy in front of the test S3 server that a test can break (`scripts/testing/tcp-proxy.py`): down refuses
/// new connections and drops open ones, as a server that went away; up serves again on the same port; and the
/// faults of a bad network or a struggling store: flapping, latency, connections reset mid-body, 500 and 503
/// SlowDown answers, answers lost after the server acted on the request, NoSuchUpload for a completed upload. The proxy exits when the test drops it (its stdin closes).
package final class OutageProxy {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var pending = Data()
    /// `http://127.0.0.1:<port>`: the endpoint to give the code under test.
    package private(set) var endpoint = ""

    /// Starts a proxy to `target` (an `http://127.0.0.1:<port>` endpoint).
    ///
    /// - Parameter requestLog: Where the proxy appends every request it forwarded whole (`time METHOD target`).
    package init(target: String, requestLog: URL? = nil) throws {
        guard let port = target.split(separator: ":").last.flatMap({ Int($0) }) else {
            throw TestEnvironmentError(description: "OutageProxy: no port in \(target)")
        }
        let script = repositoryScript("testing/tcp-proxy.py")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, String(port)] + (requestLog.map { [$0.path] } ?? [])
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let first = try readLine()
        guard first.hasPrefix("port "), let own = Int(first.dropFirst(5)) else {
            throw TestEnvironmentError(description: "tcp-proxy.py did not start: \(first)")
        }
        endpoint = "http://127.0.0.1:\(own)"
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    /// The server is gone: connections are refused and open ones dropped.
    package func down() throws { try send("down") }

    /// The server is back.
    package func up() throws { try send("up") }

    /// Down and up by turns, each state lasting `seconds` (WiFi that drops every few seconds).
    package func flap(_ seconds: ClosedRange<Double>) throws {
        try send("flap \(seconds.lowerBound) \(seconds.upperBound)")
    }

    /// Every request waits this long before it is forwarded.
    package func latency(milliseconds: Int) throws { try send("latency \(milliseconds)") }

    /// Request bodies go to the server at most this fast on each connection (a slow uplink; 0: no limit).
    package func rate(bytesPerSecond: Int) throws { try send("rate \(bytesPerSecond)") }

    /// This fraction of requests with a body is reset (RST) halfway through the body.
    package func resetMidBody(fraction: Double) throws { try send("reset \(fraction)") }

    /// This fraction of requests (of `method` only, when given) is answered by the proxy with `status` (503:
    /// SlowDown, 500: InternalError).
    package func errors(fraction: Double, status: Int, method: String? = nil) throws {
        try send("errors \(fraction) \(status)" + (method.map { " " + $0 } ?? ""))
    }

    /// The requests whose answer `lose` and `noSuchUpload` act on.
    package enum AnswerKind: String {
        /// PutObject (a PUT that is not an UploadPart).
        case put
        /// CompleteMultipartUpload.
        case complete
    }

    /// This fraction of requests of `kind` is forwarded whole and handled by the server, but the connection is
    /// closed instead of relaying the answer: the request took effect and the client cannot know.
    package func loseAnswers(fraction: Double, of kind: AnswerKind) throws {
        try send("lose \(fraction) \(kind.rawValue)")
    }

    /// The next `count` CompleteMultipartUpload requests are forwarded whole and handled by the server, and the
    /// client is answered 404 NoSuchUpload instead (a store that no longer knows an upload it completed).
    package func noSuchUpload(next count: Int) throws { try send("no-such-upload \(count)") }

    /// Every request carrying If-None-Match or If-Match is answered 501 NotImplemented by the proxy (a store
    /// without conditional writes); the server never sees it.
    package func refuseConditionalWrites() throws { try send("refuse-conditional") }

    /// No faults any more: up, no flapping, latency, resets, errors or lost answers.
    package func clear() throws { try send("clear") }

    /// The bytes clients have sent through the proxy so far (requests, headers and bodies).
    package func bytesSent() throws -> Int64 { try ask("sent")[0] }

    /// `bytesSent()` once it has stopped moving: what a client that is gone wrote may still sit in the proxy's
    /// buffers, and belongs to the time before it went.
    package func bytesSentOnceDrained() throws -> Int64 {
        var sent = try bytesSent()
        while true {
            Thread.sleep(forTimeInterval: 0.3)
            let now = try bytesSent()
            if now == sent { return sent }
            sent = now
        }
    }

    /// The requests reset mid-body, the requests answered with errors, the times the proxy went down, and the
    /// answers kept from the client (`loseAnswers`, `noSuchUpload`) so far.
    package func faults() throws -> (resets: Int64, errors: Int64, downs: Int64, lostAnswers: Int64) {
        let counts = try ask("faults")
        guard counts.count == 4 else { throw TestEnvironmentError(description: "tcp-proxy.py: faults → \(counts)") }
        return (counts[0], counts[1], counts[2], counts[3])
    }

    /// The requests a proxy started with `requestLog` forwarded to the server, in order: when each started to go
    /// to the server (Unix time), its method, and its target (path and query).
    package static func forwardedRequests(
        loggedIn requestLog: URL
    ) throws -> [(time: Double, method: String, target: String)] {
        try String(contentsOf: requestLog, encoding: .utf8).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count == 3, let time = Double(fields[0]) else { return nil }
            return (time, String(fields[1]), String(fields[2]))
        }
    }

    /// A command answered with `ok N …`.
    private func ask(_ command: String) throws -> [Int64] {
        input.fileHandleForWriting.write(Data((command + "\n").utf8))
        let answer = try readLine()
        let numbers = answer.split(separator: " ").dropFirst().compactMap { Int64($0) }
        guard answer.hasPrefix("ok "), !numbers.isEmpty else {
            throw TestEnvironmentError(description: "tcp-proxy.py: \(command) → \(answer)")
        }
        return numbers
    }

    private func send(_ command: String) throws {
        input.fileHandleForWriting.write(Data((command + "\n").utf8))
        let answer = try readLine()
        guard answer == "ok" else { throw TestEnvironmentError(description: "tcp-proxy.py: \(command) → \(answer)") }
    }

    private func readLine() throws -> String {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw TestEnvironmentError(description: "tcp-proxy.py exited") }
            pending.append(chunk)
        }
    }
}
