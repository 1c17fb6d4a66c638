import Foundation

/// A TCP proxy in front of the test S3 server that a test can cut and restore (`scripts/testing/tcp-proxy.py`):
/// down refuses new connections and drops open ones, as a server that went away; up serves again on the same
/// port. The proxy exits when the test drops it (its stdin closes).
package final class OutageProxy {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var pending = Data()
    /// `http://127.0.0.1:<port>`: the endpoint to give the code under test.
    package private(set) var endpoint = ""

    /// Starts a proxy to `target` (an `http://127.0.0.1:<port>` endpoint).
    package init(target: String) throws {
        guard let port = target.split(separator: ":").last.flatMap({ Int($0) }) else {
            throw TestEnvironmentError(description: "OutageProxy: no port in \(target)")
        }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../scripts/testing/tcp-proxy.py").standardizedFileURL.path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, String(port)]
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

    /// The bytes clients have sent through the proxy so far (requests, headers and bodies).
    package func bytesSent() throws -> Int64 {
        input.fileHandleForWriting.write(Data("sent\n".utf8))
        let answer = try readLine()
        guard answer.hasPrefix("ok "), let count = Int64(answer.dropFirst(3)) else {
            throw TestEnvironmentError(description: "tcp-proxy.py: sent → \(answer)")
        }
        return count
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
