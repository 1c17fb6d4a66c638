import FleetLedger
import FleetSystem
import FleetTestSupport
import Foundation
import Synchronization
import Testing

/// The tools behind PgBouncer in transaction pooling, and how many server connections they hold, counted in
/// `pg_stat_activity` by the `application_name` each command gives its connections.
@Suite(.serialized)
struct PoolerCLITests {
    /// A tree of `small` files of a few KiB, and `large` files of 6 MiB (two parts each at 5 MiB).
    private static func tree(_ scratch: Scratch, small: Int, large: Int = 0) throws {
        for index in 0..<small {
            try scratch.write(
                "data/d\(index % 7)/file-\(index).log",
                String(repeating: "x", count: 512 + index * 13 % 4096)
            )
        }
        for index in 0..<large {
            try scratch.write("data/large-\(index).bin", String(repeating: "\(index)", count: 6 * 1024 * 1024))
        }
    }

    @Test func uploadThroughPgBouncerRecordsEveryFileWithoutARetryAndNamesItsConnections() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let pooler = try database.poolerURL()
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        try Self.tree(scratch, small: 600)
        let config = try configFile(scratch, s3, upload: #"{ "workers": 8 }"#)

        // Two processes migrate the new database at once, through the pooler: the migration lock lives in
        // the migrating transaction, so they take turns whatever server connection each transaction gets.
        let migrations = try (0..<2).map { _ in
            try CLI.start("master", ["migrate", "--database", pooler], environment: s3.environment)
        }.map { $0.wait() }
        for result in migrations { #expect(result.status == 0, "\(result.stderr)") }

        let sampler = ConnectionSampler(
            url: try database.directURL(),
            database: database.name,
            application: "fleet-upload"
        )
        let upload = try CLI.run(
            "upload",
            ["--config", config, "--database", pooler, "--log-level", "info"],
            environment: s3.environment
        )
        let seen = try sampler.finish()
        #expect(upload.status == 0, "\(upload.stderr)")
        #expect(!upload.stderr.contains("does not exist"), "\(upload.stderr)")
        #expect(!upload.stderr.contains("retrying"), "\(upload.stderr)")
        #expect(seen.peak >= 1, "PgBouncer's server connections carry the client's application_name")

        let connection = try database.connect()
        let version = try connection.execute("SELECT max(version) FROM schema_migrations").int(0, 0)
        #expect(version == Migration.all.map(\.version).max())
        #expect(try connection.execute("SELECT count(*) FROM schema_migrations").int(0, 0) == Migration.all.count)
        #expect(
            try connection.execute("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'").int(0, 0) == 600
        )
        #expect(try connection.execute("SELECT count(DISTINCT s3_key) FROM object_records").int(0, 0) == 600)
        #expect(try bucketContents(s3).count == 600)
    }

    @Test func uploadHoldsAtMostTwoConnections() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let direct = try database.directURL()
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        try Self.tree(scratch, small: 800, large: 2)
        let config = try configFile(
            scratch,
            s3,
            upload: #"{ "workers": 16, "part_concurrency": 4, "multipart_threshold_mb": 5, "part_size_mb": 5 }"#
        )
        _ = try database.ledger()  // migrated first: the count is about the upload's own connections

        let sampler = ConnectionSampler(url: direct, database: database.name, application: "fleet-upload")
        let upload = try CLI.run("upload", ["--config", config, "--database", direct], environment: s3.environment)
        let seen = try sampler.finish()
        #expect(upload.status == 0, "\(upload.stderr)")
        #expect(try bucketContents(s3).count == 802)
        #expect(seen.samples > 10, "sampled while the upload ran")
        // The session's connection (scan, session rows) and the run's (claims, results, parts).
        #expect(seen.peak == 2, "peak \(seen.peak) connections named fleet-upload")
    }

    @Test func idleAgentHoldsNoConnectionBetweenRuns() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let direct = try database.directURL()
        _ = try database.ledger()
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        try FileManager.default.createDirectory(
            at: scratch.url.appendingPathComponent("logs"),
            withIntermediateDirectories: true
        )
        let config = try scratch.write(
            "agent.yaml",
            """
            project: { name: idle-agent }
            device: vehicle-idle
            s3: { bucket: \(s3.bucket), prefix: "\(s3.prefix.dropLast())", endpoint: "\(s3.endpoint)", region: \(s3.region) }
            sources:
              - { name: logs, path: logs }
            upload: { workers: 2 }
            agent: { stability_seconds: 0.3, upload_on_start: false, heartbeat_seconds: 1 }
            """
        )
        let agent = try CLI.start(
            "master",
            ["run", "--config", config, "--database", direct],
            environment: s3.environment
        )
        defer { kill(agent.process.processIdentifier, SIGKILL) }  // a failed expectation must not leave it running
        let connection = try database.connect()
        try scratch.write("logs/one.log", "one")
        #expect(waitForUploads(connection, atLeast: 1) == 1)
        let closed = try eventually {
            try connection.execute("SELECT count(*) FROM sync_sessions WHERE status <> 'running'").int(0, 0) == 1
        }
        #expect(closed)
        Thread.sleep(forTimeInterval: 0.5)  // the run's last read of the ledger

        let beatBefore = try connection.execute("SELECT count(*) FROM device_heartbeats").int(0, 0) ?? 0
        let sampler = ConnectionSampler(url: direct, database: database.name, application: "fleet-master-run")
        Thread.sleep(forTimeInterval: 4)
        let seen = try sampler.finish()
        let beatAfter = try connection.execute("SELECT count(*) FROM device_heartbeats").int(0, 0) ?? 0
        kill(agent.process.processIdentifier, SIGTERM)
        #expect(agent.wait().status == 0)

        #expect(beatAfter >= beatBefore + 2, "heartbeats went on, each on a connection of its own")
        // A closed connection's backend may linger for a moment as the next action connects: none is held.
        #expect(seen.idleSamples * 2 > seen.samples, "no connection most of the time: \(seen)")
        #expect(seen.longestHeld < 1.0, "a connection held \(seen.longestHeld) s while the agent was idle")
    }
}

/// Counts a database's server connections of one application in `pg_stat_activity`, every few milliseconds on
/// a thread of its own, until `finish`.
///
/// `@unchecked Sendable`: the counters are only touched while `lock` is held.
final class ConnectionSampler: @unchecked Sendable {
    struct Seen {
        /// The most connections at once.
        var peak = 0
        var samples = 0
        /// Samples that found none.
        var idleSamples = 0
        /// The longest any one connection (by pid and start time) was seen open.
        var longestHeld: TimeInterval = 0
    }

    private let lock = NSLock()
    private var stopping = false
    private var seen = Seen()
    private var spans: [String: (first: Date, last: Date)] = [:]
    private var failure: (any Error)?
    private let done = DispatchSemaphore(value: 0)

    init(url: String, database: String, application: String) {
        Thread.detachNewThread { [self] in
            defer { done.signal() }
            do {
                let connection = try PGConnection(conninfo: url, applicationName: "fleet-test-sampler")
                while !lock.withLock({ stopping }) {
                    let rows = try connection.execute(
                        """
                        SELECT pid::text || '@' || backend_start::text FROM pg_stat_activity
                        WHERE datname = \(database) AND application_name = \(application)
                        """
                    )
                    let now = Date()
                    let backends = (0..<rows.rowCount).compactMap { rows.string($0, 0) }
                    lock.withLock {
                        seen.samples += 1
                        if backends.isEmpty { seen.idleSamples += 1 }
                        seen.peak = max(seen.peak, backends.count)
                        for backend in backends { spans[backend] = (spans[backend]?.first ?? now, now) }
                    }
                    Thread.sleep(forTimeInterval: 0.005)
                }
            } catch {
                lock.withLock { failure = error }
            }
        }
    }

    /// Stops sampling and returns what was seen.
    func finish() throws -> Seen {
        lock.withLock { stopping = true }
        done.wait()
        return try lock.withLock {
            if let failure { throw failure }
            var result = seen
            result.longestHeld = spans.values.map { $0.last.timeIntervalSince($0.first) }.max() ?? 0
            return result
        }
    }
}
