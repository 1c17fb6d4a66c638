import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// `compress` on a source: text logs go up zstd-compressed under `.zst` keys and come back byte for byte; files
/// `include` does not match go up as they are; the ledger keeps the originals' identity, so a rerun skips them,
/// `retry` and multipart uploads work on it, and `delete_after_upload` deletes only originals whose checksum
/// matches.
@Suite(.serialized) struct CompressionCLITests {
    // MARK: - Generated logs

    /// Real-looking text logs: ROS console lines, syslog lines and a CSV of samples, with the repetition real logs
    /// have (the same nodes and messages, counters and timestamps moving on), and a little randomness.
    static func logText(bytes: Int, seed: UInt64, noisy: Bool = false) -> [UInt8] {
        var random = SeededGenerator(seed: seed)
        let nodes = ["/planning/node", "/perception/lidar_front", "/control/mpc", "/localization/ekf", "/can_bridge"]
        let messages = [
            "received trajectory with %d points", "publishing %d obstacles", "cycle took %d ms",
            "transform lookup from base_link to map succeeded", "heartbeat ok (seq %d)", "buffer size %d",
        ]
        let hosts = ["truck-7", "ros-master"]
        var text = ""
        text.reserveCapacity(bytes + 256)
        var time = 1_733_500_000.0 + Double(seed % 1000)
        var sequence = 0
        while text.utf8.count < bytes {
            time += Double(random.next() % 20_000) / 1_000_000
            sequence += 1
            let value = Int(random.next() % 900)
            let seconds = Int(time)
            let nanos = Int((time - Double(seconds)) * 1_000_000_000)
            let message = messages[Int(random.next() % UInt64(messages.count))].replacingOccurrences(
                of: "%d",
                with: String(value)
            )
            let noise = noisy ? " id=\(String(random.next(), radix: 16))\(String(random.next(), radix: 16))" : ""
            switch random.next() % 10 {
            case 0..<6:
                let level = random.next() % 25 == 0 ? "WARN" : "INFO"
                text += "[\(level)] [\(seconds).\(String(nanos).leftPadded(9))] "
                text += "[\(nodes[Int(random.next() % UInt64(nodes.count))])]: \(message)\(noise)\n"
            case 6..<9:
                text += "Dec  6 12:\(String((seconds / 60) % 60).leftPadded(2)):\(String(seconds % 60).leftPadded(2)) "
                text += "\(hosts[sequence % 2]) kernel: [\(seconds % 100_000).\(nanos / 1000)] \(message)\(noise)\n"
            default:
                text += "\(seconds).\(nanos / 1_000_000),\(sequence),\(value),\(Double(value) / 7.0)\(noise)\n"
            }
        }
        return Array(text.utf8)
    }

    /// A configuration whose one source compresses `*.log` and `*.txt`.
    static func config(
        _ scratch: Scratch,
        _ s3: TestS3,
        upload: String = #"{ "workers": 4 }"#,
        endpoint: String? = nil,
        project: String = "zstd-\(UUID().uuidString.prefix(8))"
    ) throws -> String {
        try scratch.write(
            "compress.json",
            """
            {
              "project": { "name": "\(project)" },
              "device": "test-rig",
              "s3": { "bucket": "\(s3.bucket)", "prefix": "\(s3.prefix)", "endpoint": "\(endpoint ?? s3.endpoint)",
                      "region": "\(s3.region)" },
              "source": { "path": "data", "allow_deletion": true,
                          "compress": { "codec": "zstd", "level": 3, "include": ["*.log", "*.txt"] } },
              "upload": \(upload)
            }
            """
        )
    }

    /// The object's bytes, decompressed with the package's own decompressor.
    static func decompressedObject(_ s3: TestS3, key: String) throws -> [UInt8] {
        try Zstd.decompress(try s3.client().getObject(bucket: s3.bucket, key: key))
    }

    /// Writes the tree: `logs` text logs of 20 KiB…1.5 MiB and three binary files (random bytes) `include` leaves
    /// out; returns relative path → bytes.
    static func writeTree(_ scratch: Scratch, logs: Int) throws -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for index in 0..<logs {
            let size = 20_000 + (index * 211_111) % 1_500_000
            let name = index % 3 == 0 ? "run\(index % 4)/console_\(index).txt" : "run\(index % 4)/node_\(index).log"
            files[name] = logText(bytes: size, seed: UInt64(index))
        }
        var random = SeededGenerator(seed: 99)
        for (index, size) in [300_000, 64_000, 1].enumerated() {
            files["camera/frame_\(index).bin"] = (0..<size).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        }
        for (path, bytes) in files {
            try scratch.write("data/" + path, "")
            try Data(bytes).write(to: scratch.url.appendingPathComponent("data/" + path))
        }
        return files
    }

    // MARK: - Tests

    @Test func logsGoUpCompressedAndComeBackByteExactAndARerunSkipsThem() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let files = try Self.writeTree(scratch, logs: 24)
        let config = try Self.config(scratch, s3)

        let plan = try runUpload(config, database, s3, ["--dry-run"])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.contains(".log.zst") || plan.stdout.contains(".txt.zst"), "\(plan.stdout)")

        let first = try runUpload(config, database, s3, ["--json"])
        #expect(first.status == 0, "\(first.stderr)")
        let totals = try #require(try summary(first)["totals"] as? [String: Any])
        #expect(totals["uploaded_files"] as? Int == files.count)

        // The bucket: a .zst object per log, each decompressing to the file; the binaries as they are.
        let contents = try bucketContents(s3)
        #expect(contents.count == files.count)
        var logBytes = 0
        var sentBytes = 0
        for (path, bytes) in files {
            if path.hasSuffix(".bin") {
                let object = try #require(contents[s3.prefix + path], "\(path) not under its plain key")
                #expect(object.1 == SHA256.hex(of: bytes))
                continue
            }
            let key = s3.prefix + path + ".zst"
            let object = try #require(contents[key], "\(key) missing")
            #expect(try Self.decompressedObject(s3, key: key) == bytes, "\(key) does not decompress to \(path)")
            logBytes += bytes.count
            sentBytes += object.0
        }
        #expect(sentBytes * 4 <= logBytes, "the bucket holds \(sentBytes) bytes for \(logBytes) bytes of logs")
        #expect(
            totals["sent_bytes"] as? Int == sentBytes
                + files.filter { $0.key.hasSuffix(".bin") }.map(\.value.count).reduce(0, +)
        )
        #expect((totals["uploaded_bytes"] as? Int) == files.values.map(\.count).reduce(0, +))

        // The ledger: the originals' size and checksum, and what was sent.
        let connection = try database.connect()
        let rows = try connection.execute(
            """
            SELECT rel_path, size_bytes, checksum_sha256, sent_bytes, coalesce(codec, ''), coalesce(codec_level, 0)
            FROM file_uploads ORDER BY rel_path
            """
        )
        var ledgerOriginal = 0
        var ledgerSent = 0
        for row in 0..<rows.rowCount {
            let path = try #require(rows.string(row, 0))
            let bytes = try #require(files[path])
            #expect(rows.int(row, 1) == bytes.count)
            #expect(rows.string(row, 2) == SHA256.hex(of: bytes), "\(path): the original's checksum")
            let compressed = !path.hasSuffix(".bin")
            #expect(rows.string(row, 4) == (compressed ? "zstd" : ""))
            #expect(rows.int(row, 5) == (compressed ? 3 : 0))
            if compressed {
                ledgerOriginal += bytes.count
                ledgerSent += try #require(rows.int(row, 3))
                #expect(rows.int(row, 3) == contents[s3.prefix + path + ".zst"]?.0)
            } else {
                #expect(rows.int(row, 3) == bytes.count)
            }
        }
        #expect(ledgerSent * 4 <= ledgerOriginal)
        let stored = try connection.execute(
            "SELECT count(*) FILTER (WHERE codec = 'zstd' AND sent_bytes < size_bytes) FROM object_records"
        )
        #expect(stored.int(0, 0) == files.count - 3)

        // A rerun skips every file, compressed or not.
        let second = try runUpload(config, database, s3, ["--json"])
        #expect(second.status == 0, "\(second.stderr)")
        let again = try #require(try summary(second)["totals"] as? [String: Any])
        #expect(again["uploaded_files"] as? Int == 0)
        #expect(again["skipped_files"] as? Int == files.count)
    }

    /// With a ledger that knows nothing of the bucket, `compare_with_bucket` skips the files sent as they are
    /// (same key and size) but never a compressed one: the object's size is the compressed size. The compressed
    /// files go up again, as the same bytes, and every object still holds its file.
    @Test func compareWithBucketSkipsOnlyTheFilesSentAsTheyAre() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let other = try TestDatabase()
        defer { other.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let files = try Self.writeTree(scratch, logs: 5)
        let config = try Self.config(scratch, s3, upload: #"{ "workers": 2, "compare_with_bucket": true }"#)
        #expect(try runUpload(config, database, s3).status == 0)
        let before = try bucketContents(s3)

        let second = try runUpload(config, other, s3, ["--json"])
        #expect(second.status == 0, "\(second.stderr)")
        let totals = try #require(try summary(second)["totals"] as? [String: Any])
        #expect(totals["skipped_files"] as? Int == 3, "the binaries, by the bucket listing")
        #expect(totals["uploaded_files"] as? Int == files.count - 3)
        let after = try bucketContents(s3)
        #expect(after.count == files.count)
        for (key, object) in before { #expect(after[key]?.1 == object.1, "\(key) changed") }
        for (path, bytes) in files where !path.hasSuffix(".bin") {
            #expect(try Self.decompressedObject(s3, key: s3.prefix + path + ".zst") == bytes)
        }
    }

    /// A log of ~30 MiB with request ids in it compresses to more than the 5 MiB threshold and goes up in parts of
    /// 5 MiB; a first run whose parts are all refused leaves its upload recorded under the original's identity,
    /// and the next run continues that upload (one CreateMultipartUpload in all) from a copy that is the same
    /// bytes.
    @Test func aLargeCompressedLogGoesUpInPartsAndAFailedUploadIsContinued() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let requestLog = scratch.url.appendingPathComponent("requests.log")
        let proxy = try OutageProxy(target: s3.endpoint, requestLog: requestLog)
        let bytes = Self.logText(bytes: 30 << 20, seed: 7, noisy: true)
        try scratch.write("data/big/planner.log", "")
        try Data(bytes).write(to: scratch.url.appendingPathComponent("data/big/planner.log"))
        let config = try Self.config(
            scratch,
            s3,
            upload: """
                { "workers": 1, "max_attempts": 1, "multipart_threshold_mb": 5, "part_size_mb": 5,
                  "part_concurrency": 2 }
                """,
            endpoint: proxy.endpoint
        )

        try proxy.errors(fraction: 1, status: 500, method: "PUT")
        let first = try runUpload(config, database, s3)
        #expect(first.status == 1, "\(first.stderr)")
        try proxy.clear()
        let second = try runUpload(config, database, s3)
        #expect(second.status == 0, "\(second.stderr)")

        let key = s3.prefix + "big/planner.log.zst"
        let object = try #require(try s3.client().headObject(bucket: s3.bucket, key: key))
        #expect(object.size > 5 << 20, "compressed to \(object.size) bytes: too few for two parts")
        #expect(object.size * 2 < Int64(bytes.count))
        #expect(object.etag.hasSuffix("-\((object.size + (5 << 20) - 1) / (5 << 20))\""), "etag \(object.etag)")
        #expect(try Self.decompressedObject(s3, key: key) == bytes)
        let creates = try OutageProxy.forwardedRequests(loggedIn: requestLog).filter {
            $0.method == "POST" && $0.target.hasSuffix("?uploads=")
        }
        #expect(creates.count == 1, "a second multipart upload was started: the first was not continued")
        let rows = try database.connect().execute(
            "SELECT status, size_bytes, sent_bytes, checksum_sha256 FROM file_uploads ORDER BY id"
        )
        #expect(rows.string(0, 0) == "failed" && rows.string(1, 0) == "uploaded")
        #expect(rows.int(1, 1) == bytes.count)
        #expect(rows.int(1, 2) == Int(object.size))
        #expect(rows.string(1, 3) == SHA256.hex(of: bytes))
    }

    @Test func retrySendsAFailedFileCompressed() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let proxy = try OutageProxy(target: s3.endpoint)
        let files = try Self.writeTree(scratch, logs: 4)
        let config = try Self.config(
            scratch,
            s3,
            upload: #"{ "workers": 2, "max_attempts": 1 }"#,
            endpoint: proxy.endpoint
        )

        try proxy.errors(fraction: 1, status: 500, method: "PUT")
        let first = try runUpload(config, database, s3)
        #expect(first.status == 1, "\(first.stderr)")
        let sessionID = try #require(Int64(first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        try proxy.clear()

        let retry = try CLI.run(
            "retry",
            ["--session", String(sessionID), "--database", database.url],
            environment: s3.environment
        )
        #expect(retry.status == 0, "\(retry.stderr)")
        let contents = try bucketContents(s3)
        #expect(contents.count == files.count)
        for (path, bytes) in files where !path.hasSuffix(".bin") {
            #expect(try Self.decompressedObject(s3, key: s3.prefix + path + ".zst") == bytes)
        }
        let rows = try database.connect().execute(
            "SELECT count(*) FILTER (WHERE status = 'uploaded' AND codec = 'zstd' AND sent_bytes < size_bytes) FROM file_uploads"
        )
        #expect(rows.int(0, 0) == files.count - 3)
    }

    /// `delete_after_upload` checks each file against the checksum the ledger recorded: the original's, so the
    /// compressed files are deleted like the others, both right after their upload and, for files an earlier run
    /// uploaded, when a rerun skips them; a file changed since it was uploaded is kept.
    @Test func deleteAfterUploadDeletesOnlyVerifiedOriginals() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let files = try Self.writeTree(scratch, logs: 6)
        let project = "zstd-delete-\(UUID().uuidString.prefix(8))"
        let config = try Self.config(scratch, s3, project: project)
        let first = try runUpload(config, database, s3)
        #expect(first.status == 0, "\(first.stderr)")

        // One log rewritten with other bytes of the same size and mtime: its checksum no longer matches.
        let changed = try #require(files.keys.sorted().first { $0.hasSuffix(".log") })
        let changedURL = scratch.url.appendingPathComponent("data/" + changed)
        var info = stat()
        #expect(stat(changedURL.path, &info) == 0)
        var altered = try #require(files[changed])
        altered[altered.count / 2] ^= 0x20
        try Data(altered).write(to: changedURL)
        let times = [info.st_atim, info.st_mtim]
        #expect(utimensat(AT_FDCWD, changedURL.path, times, 0) == 0, "mtime not restored to the nanosecond")
        // One new log, uploaded and deleted by the same run.
        let fresh = "run9/late.log"
        let freshBytes = Self.logText(bytes: 100_000, seed: 1234)
        try scratch.write("data/" + fresh, "")
        try Data(freshBytes).write(to: scratch.url.appendingPathComponent("data/" + fresh))

        let deleting = try Self.config(
            scratch,
            s3,
            upload: #"{ "workers": 4, "delete_after_upload": true }"#,
            project: project
        )
        let second = try runUpload(deleting, database, s3)
        #expect(second.status == 0, "\(second.stderr)")

        #expect(FileManager.default.fileExists(atPath: changedURL.path), "a file whose checksum differs was deleted")
        for path in files.keys where path != changed {
            let url = scratch.url.appendingPathComponent("data/" + path)
            #expect(!FileManager.default.fileExists(atPath: url.path), "\(path) was kept")
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.url.appendingPathComponent("data/" + fresh).path))
        #expect(try Self.decompressedObject(s3, key: s3.prefix + fresh + ".zst") == freshBytes)
        #expect(try Self.decompressedObject(s3, key: s3.prefix + changed + ".zst") == files[changed])
    }
}

/// splitmix64: the same numbers for the same seed, so the generated logs are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
