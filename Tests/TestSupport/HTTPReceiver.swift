import Foundation

/// A local HTTP endpoint for tests (`scripts/testing/http-receiver.py`): records every request and answers
/// with a scripted sequence of statuses (the last repeats), after optional delays, with optional `Retry-After`
/// headers. It exits when `stop()`
/// closes its stdin, or when the test process ends.
package final class HTTPReceiver {
    /// One request as the receiver recorded it.
    package struct Request: Decodable {
        package var method: String
        package var path: String
        package var headers: [String: String]
        package var body: String
        /// The status it was answered with.
        package var status: Int
        /// When it arrived, in seconds since the epoch.
        package var at: Double

        package func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }

        /// The body as a JSON object.
        package func document() throws -> [String: Any] {
            guard let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
                throw TestEnvironmentError(description: "the request body is not a JSON object: \(body.prefix(200))")
            }
            return object
        }
    }

    /// `http://127.0.0.1:<port>/hooks/session-done`
    package let url: String
    private let process = Process()
    private let input = Pipe()
    private let log = FileManager.default.temporaryDirectory.appendingPathComponent(
        "receiver-\(UUID().uuidString).jsonl"
    )

    /// - Parameter retryAfter: The n-th request's `Retry-After` value (seconds or an HTTP date; "" for none),
    ///   the last repeating.
    package init(
        statuses: [Int] = [200],
        delays: [Double] = [0],
        retryAfter: [String] = [""],
        body: String? = nil
    ) throws {
        let script = repositoryScript("testing/http-receiver.py")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            [
                "python3", script, "--log", log.path, "--statuses", statuses.map(String.init).joined(separator: ","),
                "--delays", delays.map { String($0) }.joined(separator: ","), "--retry-after",
                retryAfter.joined(separator: "|"),
            ] + (body.map { ["--body", $0] } ?? [])
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = input
        try process.run()
        var firstLine = ""
        while !firstLine.contains("\n") {
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { break }
            firstLine += String(decoding: data, as: UTF8.self)
        }
        guard let port = Int(firstLine.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw TestEnvironmentError(description: "the HTTP receiver did not start (python3 \(script))")
        }
        url = "http://127.0.0.1:\(port)/hooks/session-done"
    }

    /// Every request so far, in arrival order.
    package func requests() throws -> [Request] {
        guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map { line in
            try JSONDecoder().decode(Request.self, from: Data(line.utf8))
        }
    }

    package func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: log)
    }
}
