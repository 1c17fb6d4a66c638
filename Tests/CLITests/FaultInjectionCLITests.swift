import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// Things break on purpose while `upload` runs, and then a user's recovery command (`retry --auto`, another
/// `upload`) runs; afterwards the bucket, read with another client, must hold every file exactly once and byte
/// for byte, with no open multipart upload, and the ledger must agree: one `uploaded` row per key, nothing
/// `uploading`, no session `running`, and no object sent again after the ledger recorded it uploaded.
///
/// These are the short versions that run in CI; `scripts/soak.sh` is the long one.
@Suite(.serialized) struct FaultInjectionCLITests {
    /// A tree of small files plus one multipart file, a proxy in front of the S3 server that logs every
    /// request, and a session configuration that uploads through the proxy.
    struct Rig {
        let s3: TestS3
        let scratch: Scratch
        let proxy: OutageProxy
        let requestLog: URL
        let config: String
        /// Relative path → SHA-256 of the bytes.
        let files: [String: String]

        init(smallFiles: Int = 300, upload: String = Rig.uploadSettings) throws {
            s3 = try TestS3()
            scratch = try Scratch()
            requestLog = scratch.url.appendingPathComponent("requests.log")
            proxy = try OutageProxy(target: s3.endpoint, requestLog: requestLog)
            var files: [String: String] = [:]
            for index in 0..<smallFiles {
                let path = "vehicle/\(index % 7)/log-\(index).txt"
                let text = String(repeating: "fault-\(index) ", count: 50 + index % 300)
                try scratch.write("data/" + path, text)
                files[path] = SHA256.hex(of: Array(text.utf8))
            }
            // 12 MiB: three 5 MiB parts.
            let large = scratch.url.appendingPathComponent("data/vehicle/recording.mcap")
            var bytes = [UInt8](repeating: 0, count: 12 * 1024 * 1024)
            for index in stride(from: 0, to: bytes.count, by: 4096) {
                bytes[index] = UInt8(truncatingIfNeeded: index / 4096)
            }
            try Data(bytes).write(to: large)
            files["vehicle/recording.mcap"] = SHA256.hex(of: bytes)
            self.files = files
            config = try configFile(scratch, s3, upload: upload, endpoint: proxy.endpoint)
        }

        /// Retries keep going through the faults: a flap lasts seconds, not the minute it takes to give up.
        static let uploadSettings = """
            { "workers": 4, "max_attempts": 30, "backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.5,
              "give_up_after_seconds": 60, "multipart_threshold_mb": 8, "part_size_mb": 5, "part_concurrency": 2 }
            """

        func upload(database: String) throws -> RunningCommand {
            try CLI.start(
                "upload",
                ["--config", config, "--database", database, "--json"],
                environment: s3.environment
            )
        }

        /// Runs `upload`; if files are left, `retry --auto` (with the faults cleared) finishes the session.
        func uploadThenRetry(database: String) throws {
            let first = try upload(database: database).wait()
            #expect(first.status == 0 || first.status == 1, "\(first.stderr)")
            try proxy.clear()
            guard first.status == 1 else { return }
            let session = try #require((try summary(first))["session_id"] as? Int)
            let retry = try CLI.run(
                "retry",
                ["--session", String(session), "--auto", "--database", database],
                environment: s3.environment
            )
            #expect(retry.status == 0, "\(retry.stderr)")
        }

        /// Every file once in the bucket, byte for byte; the ledger agrees; nothing sent after it was recorded.
        func verify(_ connection: PGConnection) throws {
            let contents = try bucketContents(s3)
            let expected = Dictionary(uniqueKeysWithValues: files.map { (s3.prefix + $0.key, $0.value) })
            let missing = expected.keys.filter { contents[$0] == nil }.sorted()
            let extra = contents.keys.filter { expected[$0] == nil }.sorted()
            #expect(missing.count == 0, "\(missing.count) objects missing from the bucket: \(missing.prefix(5))")
            #expect(
                extra.count == 0,
                "\(extra.count) objects in the bucket that are not in the tree: \(extra.prefix(5))"
            )
            let wrong = expected.filter { contents[$0.key]?.1 != $0.value }.map(\.key).sorted()
            #expect(wrong.count == 0, "objects whose bytes differ from the file: \(wrong.prefix(5))")
            #expect(try s3.client().listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).isEmpty)

            try expectNothingLeftHalfDone(connection)
            let ledger = try connection.execute(
                """
                SELECT count(DISTINCT s3_key) FILTER (WHERE status = 'uploaded'),
                       count(*) FILTER (WHERE status = 'uploaded')
                FROM file_uploads
                """
            )
            #expect(ledger.int(0, 0) == files.count, "keys recorded uploaded")
            #expect(ledger.int(0, 1) == files.count, "a key recorded uploaded twice")
            let checksums = try connection.execute(
                "SELECT s3_key, checksum_sha256, extract(epoch FROM finished_at)::float8 FROM file_uploads WHERE status = 'uploaded'"
            )
            var recordedAt: [String: Double] = [:]
            var wrongChecksum: [String] = []
            for row in 0..<checksums.rowCount {
                let key = checksums.string(row, 0) ?? ""
                if checksums.string(row, 1) != expected[key] { wrongChecksum.append(key) }
                recordedAt[key] = checksums.string(row, 2).flatMap(Double.init)
            }
            #expect(
                wrongChecksum.count == 0,
                "ledger checksum differs from the file: \(wrongChecksum.sorted().prefix(5))"
            )

            // No PUT (whole object or part) of a key after the ledger recorded that key uploaded.
            var sentAgain: [String] = []
            for request in try OutageProxy.forwardedRequests(loggedIn: requestLog) where request.method == "PUT" {
                let path = request.target.split(separator: "?", maxSplits: 1)[0]
                let key = String(path.dropFirst(s3.bucket.count + 2)).removingPercentEncoding ?? ""
                if let recorded = recordedAt[key], request.time > recorded {
                    sentAgain.append("\(key) (sent \(request.time), recorded \(recorded))")
                }
            }
            #expect(
                sentAgain.count == 0,
                "sent again after it was recorded uploaded: \(Set(sentAgain).sorted().prefix(5))"
            )
        }

        func remove() { scratch.remove() }
    }

    /// WiFi that drops every 2–3 seconds for the whole run.
    @Test func connectionFlappingEveryFewSeconds() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let rig = try Rig(smallFiles: 600)
        defer { rig.remove() }
        try rig.proxy.latency(milliseconds: 25)
        try rig.proxy.flap(2...3)
        try rig.uploadThenRetry(database: database.url)
        #expect(try rig.proxy.faults().downs >= 1, "the run ended before the link first dropped")
        let connection = try database.connect()
        #expect(try connection.execute("SELECT count(*) FROM file_uploads WHERE attempts > 1").int(0, 0) ?? 0 > 0)
        try rig.verify(connection)
    }

    /// A slow link whose connections are reset in the middle of request bodies.
    @Test func latencyAndConnectionsResetMidBody() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let rig = try Rig()
        defer { rig.remove() }
        try rig.proxy.latency(milliseconds: 20)
        try rig.proxy.resetMidBody(fraction: 0.15)
        try rig.uploadThenRetry(database: database.url)
        #expect(try rig.proxy.faults().resets > 0)
        try rig.verify(try database.connect())
    }

    /// A store that throttles (503 SlowDown) and then fails (500) a fifth of the requests.
    @Test func throttlingAndServerErrors() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let rig = try Rig()
        defer { rig.remove() }
        try rig.proxy.errors(fraction: 0.2, status: 503)
        let run = try rig.upload(database: database.url)
        Thread.sleep(forTimeInterval: 1.5)
        try rig.proxy.errors(fraction: 0.2, status: 500)
        let result = run.wait()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try rig.proxy.faults().errors > 0)
        let connection = try database.connect()
        let retried = try connection.execute("SELECT count(*) FROM file_uploads WHERE attempts > 1").int(0, 0) ?? 0
        #expect(retried > 0, "no file needed a second attempt")
        try rig.verify(connection)
    }

    /// `upload` SIGKILLed at random moments, five times, then run to the end.
    @Test func killedAtRandomMomentsAndRunAgain() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let rig = try Rig(smallFiles: 600)
        defer { rig.remove() }
        try rig.proxy.latency(milliseconds: 5)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5 {
            let run = try rig.upload(database: database.url)
            Thread.sleep(forTimeInterval: Double.random(in: 0.4...1.6, using: &generator))
            kill(run.process.processIdentifier, SIGKILL)
            _ = run.wait()
        }
        let last = try rig.upload(database: database.url).wait()
        #expect(last.status == 0, "\(last.stderr)")
        try rig.verify(try database.connect())
    }

    /// The ledger's PostgreSQL restarts in the middle of the run: the run connects again and finishes.
    @Test func postgresRestartedMidRun() throws {
        let cluster = try PrivateCluster()
        defer { cluster.stop() }
        let rig = try Rig(smallFiles: 600)
        defer { rig.remove() }
        try rig.proxy.latency(milliseconds: 10)
        let run = try rig.upload(database: cluster.url)
        let connection = try PGConnection(conninfo: cluster.url)
        #expect(waitForUploads(connection, atLeast: 100) >= 100)
        try cluster.restart()
        let result = run.wait()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("the ledger connection was lost; connecting again"), "\(result.stderr)")
        try rig.verify(try PGConnection(conninfo: cluster.url))
    }
}

/// A PostgreSQL cluster of the test's own (`scripts/pg.sh`), which it may restart without disturbing the
/// other tests' server.
struct PrivateCluster {
    let directory: String
    let url: String

    init() throws {
        directory = NSTemporaryDirectory() + "fleet-pg-" + UUID().uuidString.prefix(8)
        let started = try CLI.runTool(PrivateCluster.script, ["start", directory])
        guard started.status == 0, let quote = started.stdout.firstIndex(of: "'") else {
            throw TestEnvironmentError(description: "scripts/pg.sh start failed: \(started.stderr)")
        }
        url = String(started.stdout[started.stdout.index(after: quote)...].prefix { $0 != "'" })
    }

    func restart() throws {
        let result = try CLI.runTool(PrivateCluster.script, ["restart", directory])
        guard result.status == 0 else { throw TestEnvironmentError(description: "pg.sh restart: \(result.stderr)") }
    }

    func stop() { _ = try? CLI.runTool(PrivateCluster.script, ["stop", directory]) }

    static let script = repositoryScript("pg.sh")
}
