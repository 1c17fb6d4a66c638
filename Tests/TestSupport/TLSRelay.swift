import Foundation

/// An HTTPS front for the test S3 server whose certificate comes from a throwaway private CA
/// (`scripts/testing/tls-relay.py`): a client that trusts only the system's CAs refuses it, one given
/// `caBundle` connects. The relay exits when the test drops it (its stdin closes).
package final class TLSRelay {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    /// `https://127.0.0.1:<port>`: the endpoint to give the code under test.
    package private(set) var endpoint = ""
    /// The private CA's certificate (PEM).
    package let caBundle: String

    /// Starts a relay to `target` (an `http://127.0.0.1:<port>` endpoint), its CA and certificate in `directory`.
    package init(target: String, directory: URL) throws {
        guard let port = target.split(separator: ":").last.flatMap({ Int($0) }) else {
            throw TestEnvironmentError(description: "TLSRelay: no port in \(target)")
        }
        caBundle = directory.appendingPathComponent("ca.pem").path
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repositoryScript("testing/tls-relay.py"), directory.path, String(port)]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var pending = Data()
        while !pending.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw TestEnvironmentError(description: "tls-relay.py exited (openssl?)") }
            pending.append(chunk)
        }
        let first = String(decoding: pending, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard first.hasPrefix("port "), let own = Int(first.dropFirst(5)) else {
            throw TestEnvironmentError(description: "tls-relay.py did not start: \(first)")
        }
        endpoint = "https://127.0.0.1:\(own)"
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
