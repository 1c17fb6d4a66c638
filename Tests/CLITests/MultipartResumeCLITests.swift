import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// Large files survive a SIGKILL or a dropped connection mid-upload: the next attempt sends only the parts S3 does
/// not hold yet, measured at a proxy between the uploader and the server.
@Suite(.serialized) struct MultipartResumeCLITests {
    static let mebibyte: Int64 = 1 << 20

    /// A file of `mebibytes` MiB whose every MiB differs (a random block stamped with its index).
    static func writeLargeFile(_ scratch: Scratch, _ name: String, mebibytes: Int) throws -> URL {
        let url = scratch.url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw TestEnvironmentError(description: "cannot create \(url.path)")
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        var generator = SystemRandomNumberGenerator()
        var block = (0..<Int(mebibyte)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for index in 0..<mebibytes {
            withUnsafeBytes(of: UInt64(index).littleEndian) { block.replaceSubrange(0..<8, with: $0) }
            try handle.write(contentsOf: block)
        }
        return url
    }

    static func fileSHA256(_ url: URL) throws -> String {
        let file = try LocalFile(path: url.path)
        return try file.sha256(offset: 0, length: file.status().size).hexString
    }

    static func multipartSettings(partMebibytes: Int, lanes: Int, extra: String = "") -> String {
        """
        { "workers": 1, "multipart_threshold_mb": \(partMebibytes * 2), "part_size_mb": \(partMebibytes),
          "part_concurrency": \(lanes)\(extra) }
        """
    }

    static func count(_ connection: PGConnection, _ sql: PGQuery) throws -> Int {
        try connection.execute(sql).int(0, 0) ?? 0
    }

    @Test func a1GiBUploadKilledAt60PercentResumesWithoutSendingTheFinishedPartsAgain() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()  // migrated before the test queries it
        let scratch = try Scratch()
        defer { scratch.remove() }
        let proxy = try OutageProxy(target: s3.endpoint)
        let (partSize, parts, lanes) = (16 * Self.mebibyte, 64, 4)
        let file = try Self.writeLargeFile(scratch, "data/drive/lidar.bin", mebibytes: parts * 16)
        let config = try configFile(
            scratch,
            s3,
            upload: Self.multipartSettings(partMebibytes: 16, lanes: lanes),
            endpoint: proxy.endpoint
        )
        let arguments = ["--config", config, "--database", database.url, "--json"]
        let connection = try database.connect()

        let first = try CLI.start("upload", arguments, environment: s3.environment)
        defer { kill(first.process.processIdentifier, SIGKILL) }  // a failed expectation must not leave it running
        let reached60Percent = try eventually(within: 120) {
            try Self.count(connection, "SELECT count(*) FROM upload_parts") >= parts * 6 / 10
        }
        #expect(reached60Percent)
        kill(first.process.processIdentifier, SIGKILL)
        _ = first.wait()
        let recorded = try Self.count(connection, "SELECT count(*) FROM upload_parts")
        // What the killed process wrote may still sit in socket buffers the proxy has not read: it counts as
        // sent before the kill, where it belongs.
        let sentBeforeKill = try proxy.bytesSentOnceDrained()
        #expect(recorded < parts, "the upload finished before it was killed")

        let second = try CLI.run("upload", arguments, environment: s3.environment)
        #expect(second.status == 0, "\(second.stderr)")
        let sentAfterKill = try proxy.bytesSent() - sentBeforeKill

        // Only the parts the ledger did not record are sent again (plus requests' headers and XML);
        // across both runs, at most the parts in flight at the kill went twice.
        let slack = 2 * Self.mebibyte
        print(
            "multipart resume: \(recorded)/\(parts) parts recorded at the kill; sent \(sentBeforeKill) bytes before it, "
                + "\(sentAfterKill) after (file \(Int64(parts) * partSize))"
        )
        #expect(sentAfterKill <= Int64(parts - recorded) * partSize + slack, "re-sent \(sentAfterKill) bytes")
        #expect(sentBeforeKill + sentAfterKill <= Int64(parts) * partSize + Int64(lanes) * partSize + slack)

        let key = s3.prefix + "drive/lidar.bin"
        let contents = try bucketContents(s3)
        #expect(contents.count == 1)
        #expect(contents[key]?.0 == parts * 16 * Int(Self.mebibyte))
        #expect(contents[key]?.1 == (try Self.fileSHA256(file)))
        #expect(try s3.client().listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).isEmpty)

        // One upload, started by the killed run and completed by the second; the killed run's row is settled.
        let rows = try connection.execute(
            """
            SELECT s.status, f.status, f.error_class, f.multipart_upload_id FROM file_uploads AS f
            JOIN sync_sessions AS s ON s.id = f.session_id ORDER BY f.id
            """
        )
        #expect(rows.rowCount == 2)
        #expect(rows.string(0, 0) == "interrupted")
        #expect(rows.string(0, 1) == "failed")
        #expect(rows.string(0, 2) == "interrupted")
        #expect(rows.string(1, 0) == "completed")
        #expect(rows.string(1, 1) == "uploaded")
        #expect(rows.string(0, 3) != nil && rows.string(0, 3) == rows.string(1, 3))
    }

    @Test func aDroppedConnectionMidUploadIsContinuedByTheNextAttempt() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()  // migrated before the test queries it
        let scratch = try Scratch()
        defer { scratch.remove() }
        let proxy = try OutageProxy(target: s3.endpoint)
        let (partSize, parts, lanes) = (5 * Self.mebibyte, 40, 2)
        let file = try Self.writeLargeFile(scratch, "data/camera.bin", mebibytes: parts * 5)
        let config = try configFile(
            scratch,
            s3,
            upload: Self.multipartSettings(
                partMebibytes: 5,
                lanes: lanes,
                extra: #", "backoff_base_seconds": 0.5, "backoff_cap_seconds": 1, "give_up_after_seconds": 60"#
            ),
            endpoint: proxy.endpoint
        )
        let connection = try database.connect()

        let run = try CLI.start(
            "upload",
            ["--config", config, "--database", database.url, "--json"],
            environment: s3.environment
        )
        defer { kill(run.process.processIdentifier, SIGKILL) }
        #expect(
            try eventually(within: 60) { try Self.count(connection, "SELECT count(*) FROM upload_parts") >= parts / 2 }
        )
        try proxy.down()
        Thread.sleep(forTimeInterval: 1.5)
        try proxy.up()
        let result = run.wait()

        #expect(result.status == 0, "\(result.stderr)")
        #expect(try proxy.bytesSent() <= Int64(parts + lanes) * partSize + 2 * Self.mebibyte)
        let contents = try bucketContents(s3)
        #expect(contents[s3.prefix + "camera.bin"]?.1 == (try Self.fileSHA256(file)))
        let row = try connection.execute("SELECT status, attempts FROM file_uploads")
        #expect(row.string(0, 0) == "uploaded")
        #expect((row.int(0, 1) ?? 0) >= 2)
        #expect(try s3.client().listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).isEmpty)
    }

    @Test func aFileThatChangedAfterItsUploadWasKilledIsSentAfreshAndTheOldUploadAborted() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()  // migrated before the test queries it
        let scratch = try Scratch()
        defer { scratch.remove() }
        let proxy = try OutageProxy(target: s3.endpoint)
        let file = try Self.writeLargeFile(scratch, "data/radar.bin", mebibytes: 60)
        let config = try configFile(
            scratch,
            s3,
            upload: Self.multipartSettings(partMebibytes: 5, lanes: 1),
            endpoint: proxy.endpoint
        )
        let arguments = ["--config", config, "--database", database.url, "--json"]
        let connection = try database.connect()

        // Cut off after a few parts, then killed: an unfinished upload the ledger knows.
        let first = try CLI.start("upload", arguments, environment: s3.environment)
        defer { kill(first.process.processIdentifier, SIGKILL) }
        #expect(try eventually(within: 60) { try Self.count(connection, "SELECT count(*) FROM upload_parts") >= 3 })
        try proxy.down()
        kill(first.process.processIdentifier, SIGKILL)
        _ = first.wait()
        try proxy.up()
        let client = try s3.client()
        let abandoned = try client.listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix)
        #expect(abandoned.count == 1)

        let handle = try FileHandle(forWritingTo: file)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("a new tail".utf8))
        try handle.close()
        let second = try CLI.run("upload", arguments, environment: s3.environment)

        #expect(second.status == 0, "\(second.stderr)")
        #expect(try bucketContents(s3)[s3.prefix + "radar.bin"]?.1 == (try Self.fileSHA256(file)))
        #expect(try client.listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).isEmpty)
        #expect(try Self.count(connection, "SELECT count(*) FROM file_uploads WHERE status = 'uploading'") == 0)
    }

    @Test func sigintEndsALargeUploadInFlightWithinTheStopTimeoutAndTheNextRunContinuesFromItsParts() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        _ = try database.ledger()  // migrated before the test queries it
        let scratch = try Scratch()
        defer { scratch.remove() }
        let proxy = try OutageProxy(target: s3.endpoint)
        let (partSize, parts, lanes) = (5 * Self.mebibyte, 8, 2)
        let file = try Self.writeLargeFile(scratch, "data/lidar.bin", mebibytes: parts * 5)
        let config = try configFile(
            scratch,
            s3,
            upload: Self.multipartSettings(partMebibytes: 5, lanes: lanes, extra: #", "stop_timeout_seconds": 2"#),
            endpoint: proxy.endpoint
        )
        let arguments = ["--config", config, "--database", database.url, "--json"]
        let connection = try database.connect()
        // 512 KiB/s a connection: a part takes 10 s, the whole file 40 s on two lanes.
        try proxy.rate(bytesPerSecond: 512 * 1024)

        let first = try CLI.start("upload", arguments, environment: s3.environment)
        defer { kill(first.process.processIdentifier, SIGKILL) }
        #expect(try eventually(within: 60) { try Self.count(connection, "SELECT count(*) FROM upload_parts") >= 1 })
        let interrupted = Date()
        kill(first.process.processIdentifier, SIGINT)
        let result = first.wait()
        let took = Date().timeIntervalSince(interrupted)

        // The parts in flight had 2 s, then were ended: far sooner than the ~30 s the rest of the file needs.
        #expect(took < 15, "the stop took \(took) s")
        #expect(result.status == 1, "\(result.stderr)")
        let row = try connection.execute("SELECT status, error_class, error_message FROM file_uploads")
        #expect(row.string(0, 0) == "failed")
        #expect(row.string(0, 1) == "interrupted")
        #expect(row.string(0, 2)?.contains("the next run continues") == true, "\(row.string(0, 2) ?? "")")
        let recorded = try Self.count(connection, "SELECT count(*) FROM upload_parts")
        #expect(recorded >= 1 && recorded < parts)
        let client = try s3.client()
        #expect(try bucketContents(s3).isEmpty, "nothing is stored from a transfer that was ended")
        #expect(try client.listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).count == 1)

        try proxy.clear()
        let sentBefore = try proxy.bytesSentOnceDrained()
        let second = try CLI.run("upload", arguments, environment: s3.environment)
        #expect(second.status == 0, "\(second.stderr)")
        let sentAfter = try proxy.bytesSent() - sentBefore
        #expect(sentAfter <= Int64(parts - recorded) * partSize + Self.mebibyte, "re-sent \(sentAfter) bytes")
        #expect(try bucketContents(s3)[s3.prefix + "lidar.bin"]?.1 == (try Self.fileSHA256(file)))
        #expect(try client.listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).isEmpty)
    }
}
