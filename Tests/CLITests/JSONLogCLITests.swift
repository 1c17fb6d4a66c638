import Foundation
import Testing

/// `--log-format json`: every line the commands log on stderr is one JSON object.
struct JSONLogCLITests {
    /// Parses each line of `stderr` as a JSON object; records an issue for a line that is not one.
    private func events(_ stderr: String) -> [[String: Any]] {
        stderr.split(separator: "\n").compactMap { line in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            if object == nil { Issue.record("not a JSON object: \(line)") }
            return object
        }
    }

    @Test func theAgentLogsOneJSONObjectPerLineWithMetadataAsFields() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(
            at: scratch.url.appendingPathComponent("terminal"),
            withIntermediateDirectories: true
        )
        // A device name with a quote and a backslash, and a ledger that refuses connections (libpq's message
        // spans two lines): both must come out escaped.
        let config = try scratch.write(
            "agent.yaml",
            """
            project: { name: json-logs }
            device: 'veh"1\\x'
            s3: { bucket: fleet-data, endpoint: "http://127.0.0.1:1", region: us-east-1 }
            sources:
              - { name: terminal, path: terminal }
            agent: { upload_on_start: false }
            """
        )
        let agent = try CLI.start(
            "master",
            [
                "run", "--config", config, "--database", "postgresql://fleet@127.0.0.1:1/none", "--log-level", "info",
                "--log-format", "json",
            ]
        )
        defer { kill(agent.process.processIdentifier, SIGKILL) }
        Thread.sleep(forTimeInterval: 1.5)
        kill(agent.process.processIdentifier, SIGTERM)
        let result = agent.wait()
        #expect(result.status == 0, "\(result.stderr)")

        let lines = events(result.stderr)
        #expect(lines.count >= 3, "\(result.stderr)")
        for line in lines {
            for field in ["ts", "level", "label", "msg", "source"] {
                #expect(line[field] is String, "\(field) missing in \(line)")
            }
            #expect(line["label"] as? String == "fleet.master")
            let ts = line["ts"] as? String ?? ""
            #expect(ts.count == 24 && ts.hasSuffix("Z"), "\(ts) is not 2026-11-23T18:00:00.123Z")
        }
        let started = try #require(lines.first { $0["msg"] as? String == "agent started" })
        #expect(started["level"] as? String == "info")
        #expect(started["source"] as? String == "FleetCore")
        #expect(started["device"] as? String == #"veh"1\x"#)
        #expect(started["sources"] as? String == "terminal")
        let unavailable = try #require(lines.first { ($0["msg"] as? String)?.hasPrefix("ledger unavailable") == true })
        #expect(unavailable["level"] as? String == "error")
        #expect((unavailable["error"] as? String)?.contains("127.0.0.1") == true)
        #expect(unavailable["attempts"] as? String == "1", "metadata values are strings")
        #expect(lines.last?["msg"] as? String == "agent stopped")
    }

    @Test func anUnknownLogFormatIsAUsageError() throws {
        let result = try CLI.run("master", ["status", "--log-format", "xml"])
        #expect(result.status == 2)
        #expect(result.reason.contains("--log-format"), "\(result.stderr)")
    }

    @Test func textStaysTheDefault() throws {
        let result = try CLI.run(
            "master",
            ["status", "--log-level", "debug", "--database", "postgresql://fleet@127.0.0.1:1/none"]
        )
        #expect(result.status == 3)
        #expect(!result.stderr.hasPrefix("{"))
    }
}
