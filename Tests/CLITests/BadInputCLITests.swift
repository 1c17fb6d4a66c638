import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// Bad input of every kind a vehicle produces, run through the binaries: each ends in its documented outcome
/// (docs/bad-input.md), a clear one-line error or a recorded permanent failure, and leaves the bucket and the
/// ledger consistent: no partial object, no row `uploading`, no session `running`, no local file lost.
@Suite(.serialized) struct BadInputCLITests {
    @Test(arguments: [
        (
            "cut.json", "{\n  \"project\": { \"name\": \"x\" },\n  \"s3\": { \"bucket\": \"b\", \"pre",
            "cut.json: invalid JSON"
        ),
        ("cut.yaml", "project:\n  name: x\ns3:\n  bucket: \"b", "cut.yaml: invalid YAML"),
        ("empty.json", "", "empty.json: cannot read the configuration: the file is empty"),
        (
            "twice.json", "{\n  \"upload\": { \"workers\": 4,\n    \"workers\": 64 }\n}",
            "twice.json: invalid JSON: duplicate key 'upload.workers' (first at line 2) at line 3, column 5"
        ),
        (
            "comma.json", "{\n  \"project\": { \"name\": \"x\", },\n}",
            "comma.json: invalid JSON: trailing comma after the last member of 'project' at line 2, column 27"
        ),
    ])
    func truncatedConfigurationExitsTwoAndRecordsNothing(file: String, content: String, expected: String) throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = try scratch.write(file, content)

        let result = try CLI.run("upload", ["--config", path, "--database", database.url])

        #expect(result.status == 2)
        #expect(result.reason.hasPrefix("upload: \(scratch.url.path)/\(expected)"), "got: \(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1, "more than one line: \(result.stderr)")
        _ = try database.ledger()
        #expect(try database.connect().execute("SELECT count(*) FROM sync_sessions").int(0, 0) == 0)
    }

    /// Credentials the store refuses: the run ends before a session opens, naming the problem, not the secret.
    @Test func wrongCredentialsExitThreeBeforeASessionOpens() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/a.log", "a")
        var environment = s3.environment
        environment["AWS_SECRET_ACCESS_KEY"] = "not-the-secret-not-the-secret-not-the-se"

        let result = try runUpload(try configFile(scratch, s3), database, s3, environment: environment)

        #expect(result.status == 3)
        #expect(result.reason.contains("signature_mismatch"), "\(result.stderr)")
        #expect(!result.stderr.contains("not-the-secret"))
        _ = try database.ledger()
        #expect(try database.connect().execute("SELECT count(*) FROM sync_sessions").int(0, 0) == 0)
        #expect(try bucketContents(s3).isEmpty)
    }

    /// A source directory that is not there (an unmounted disk): the session is recorded `failed` with the
    /// reason, so the fleet's dashboards see it, and the exit code says the environment is wrong.
    @Test func missingSourceDirectoryFailsTheSessionWithTheReason() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let config = try configFile(scratch, s3)

        let result = try runUpload(config, database, s3)

        #expect(result.status == 3)
        #expect(result.stderr.contains("source.path: no readable directory at '\(scratch.url.path)/data'"))
        let session = try database.connect().execute("SELECT status, error_message FROM sync_sessions")
        #expect(session.string(0, 0) == "failed")
        #expect(session.string(0, 1)?.contains("no readable directory") == true)
        try expectNothingLeftHalfDone(database.connect())
    }

    /// A file the uploading user may not read is a permanent failure of its own; the rest uploads.
    @Test func unreadableFileIsRecordedAndTheRestUploads() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/open.log", "readable")
        let secret = try scratch.write("data/secret.log", "not for you")
        try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: secret)
        // Root reads everything, so the run is an ordinary user's.
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch.url.path)
        let config = try configFile(scratch, s3)

        let result = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment,
            asUser: getuid() == 0 ? "nobody" : nil
        )

        #expect(result.status == 1, "\(result.stderr)")
        #expect(Set(try bucketContents(s3).keys) == [s3.prefix + "open.log"])
        let row = try database.connect().execute(
            "SELECT status, error_class, error_message FROM file_uploads WHERE rel_path = 'secret.log'"
        )
        #expect(row.string(0, 0) == "permanent_failure")
        #expect(row.string(0, 1) == "file_unreadable")
        #expect(row.string(0, 2)?.contains("secret.log: permission denied") == true, "\(row.string(0, 2) ?? "")")
        // The summary's class column is as wide as its longest class: the count stands apart from the name.
        #expect(result.stderr.contains("\n    file_unreadable  1\n"), "\(result.stderr)")
        try expectNothingLeftHalfDone(database.connect())
    }

    /// A directory the uploading user may not read: its files were never seen, so the session cannot count as
    /// complete. It ends `completed_with_errors` with the directory named, exit 1; the rest uploads.
    @Test func unreadableDirectoryEndsTheSessionWithErrors() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/open/a.log", "readable")
        try scratch.write("data/closed/b.log", "behind a closed door")
        let closed = scratch.url.appendingPathComponent("data/closed").path
        try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: closed)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: closed) }
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch.url.path)
        let config = try configFile(scratch, s3)

        let result = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment,
            asUser: getuid() == 0 ? "nobody" : nil
        )

        #expect(result.status == 1, "\(result.stderr)")
        #expect(Set(try bucketContents(s3).keys) == [s3.prefix + "open/a.log"])
        let session = try database.connect().execute("SELECT status, error_message FROM sync_sessions")
        #expect(session.string(0, 0) == "completed_with_errors")
        #expect(
            session.string(0, 1)?.hasPrefix("1 directory could not be read, their files were not uploaded: ") == true,
            "\(session.string(0, 1) ?? "")"
        )
        #expect(session.string(0, 1)?.contains("closed': Permission denied") == true)
        #expect(result.stderr.contains("Session "), "\(result.stderr)")
        #expect(result.stderr.contains("completed_with_errors"))
        try expectNothingLeftHalfDone(database.connect())
    }

    /// The scan recorded the files, the uploads failed (the store refused every PUT), and before `retry` one
    /// file was deleted, one truncated and one grown: the deleted one is a permanent `file_missing`, the other
    /// two are uploaded as they are now, and the ledger records their new size and checksum.
    @Test func filesDeletedTruncatedOrGrownBetweenScanAndUpload() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let proxy = try OutageProxy(target: s3.endpoint)
        let body = String(repeating: "0123456789", count: 100)
        for name in ["gone", "shrunk", "grown", "same"] { try scratch.write("data/\(name).log", body) }
        let config = try configFile(
            scratch,
            s3,
            upload: #"{ "workers": 2, "max_attempts": 1, "give_up_after_seconds": 5 }"#,
            endpoint: proxy.endpoint
        )
        try proxy.errors(fraction: 1, status: 503, method: "PUT")
        let upload = try runUpload(config, database, s3, ["--json"])
        #expect(upload.status == 1, "\(upload.stderr)")
        let session = try #require(try summary(upload)["session_id"] as? Int)
        #expect(try bucketContents(s3).isEmpty)

        let data = scratch.url.appendingPathComponent("data")
        try FileManager.default.removeItem(at: data.appendingPathComponent("gone.log"))
        try Data("short".utf8).write(to: data.appendingPathComponent("shrunk.log"))
        let grown = try FileHandle(forWritingTo: data.appendingPathComponent("grown.log"))
        try grown.seekToEnd()
        try grown.write(contentsOf: Data(String(repeating: "more ", count: 500).utf8))
        try grown.close()
        try proxy.clear()

        let retry = try CLI.run(
            "retry",
            ["--session", String(session), "--database", database.url],
            environment: s3.environment
        )

        #expect(retry.status == 1, "\(retry.stderr)")
        let stored = try bucketContents(s3)
        #expect(Set(stored.keys) == Set(["shrunk.log", "grown.log", "same.log"].map { s3.prefix + $0 }))
        let rows = try database.connect().execute(
            "SELECT rel_path, status, error_class, size_bytes, checksum_sha256 FROM file_uploads ORDER BY rel_path"
        )
        for row in 0..<rows.rowCount {
            let name = rows.string(row, 0) ?? ""
            if name == "gone.log" {
                #expect(rows.string(row, 1) == "permanent_failure")
                #expect(rows.string(row, 2) == "file_missing")
                continue
            }
            let file = data.appendingPathComponent(name)
            let size = try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int
            #expect(rows.string(row, 1) == "uploaded", "\(name)")
            #expect(rows.int(row, 3) == size, "\(name): recorded size")
            #expect(rows.string(row, 4) == (try sha256(file)), "\(name): recorded checksum")
            #expect(stored[s3.prefix + name]?.0 == size, "\(name): object size")
            #expect(stored[s3.prefix + name]?.1 == (try sha256(file)), "\(name): object bytes")
        }
        try expectNothingLeftHalfDone(database.connect())
    }

    /// A name that is not UTF-8 (Latin-1 from an old logger) uploads under a key that spells each invalid byte
    /// as `%XX`; a path whose key would pass S3's 1,024 bytes is a permanent `invalid_key`, never sent.
    @Test func nonUTF8AndOverlongNames() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let data = scratch.url.appendingPathComponent("data")
        try scratch.write("data/plain.log", "plain")
        let latin1 = Array("caf".utf8) + [0xE9] + Array(" r\u{e9}sum\u{e9} .log".utf8)  // é as one byte, then UTF-8
        let latin1Bytes = Array("latin-1 contents".utf8)
        try writeFile(named: latin1, in: data, contents: latin1Bytes)
        let deep = (0..<5).map { _ in String(repeating: "d", count: 200) }.joined(separator: "/")
        try scratch.write("data/\(deep)/long.log", "too long a key")
        let config = try configFile(scratch, s3)

        let result = try runUpload(config, database, s3)

        #expect(result.status == 1, "\(result.stderr)")
        let stored = try bucketContents(s3)
        let latin1Key = s3.prefix + "caf%E9 r\u{e9}sum\u{e9} .log"
        #expect(Set(stored.keys) == [s3.prefix + "plain.log", latin1Key])
        #expect(stored[latin1Key]?.1 == SHA256.hex(of: latin1Bytes))
        let long = try database.connect().execute(
            "SELECT status, error_class, error_message FROM file_uploads WHERE rel_path LIKE '%long.log'"
        )
        #expect(long.string(0, 0) == "permanent_failure")
        #expect(long.string(0, 1) == "invalid_key")
        #expect(long.string(0, 2)?.contains("1024") == true, "\(long.string(0, 2) ?? "")")
        try expectNothingLeftHalfDone(database.connect())
    }

    /// Directories removed while the run scans and uploads (a log rotation, an operator cleaning up): the run
    /// ends normally; what survived is uploaded byte for byte, and a removed file is either absent from the
    /// ledger (gone before the scan reached it) or a permanent `file_missing` (gone before its upload).
    @Test func directoriesRemovedWhileTheRunScansAndUploads() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        for directory in 0..<20 {
            for index in 0..<100 { try scratch.write("data/d\(directory)/f\(index).log", "d\(directory) f\(index)") }
        }
        let config = try configFile(scratch, s3)
        _ = try database.ledger()
        let connection = try database.connect()

        let run = try CLI.start(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        for _ in 0..<2000 {
            if try connection.execute("SELECT count(*) FROM sync_sessions").int(0, 0) ?? 0 > 0 { break }
            Thread.sleep(forTimeInterval: 0.005)
        }
        for directory in (10..<20).reversed() {
            try FileManager.default.removeItem(at: scratch.url.appendingPathComponent("data/d\(directory)"))
        }
        let result = run.wait()

        #expect(result.status == 0 || result.status == 1, "\(result.stderr)")
        let stored = try bucketContents(s3)
        for directory in 0..<10 {
            for index in 0..<100 {
                let key = s3.prefix + "d\(directory)/f\(index).log"
                #expect(stored[key]?.1 == SHA256.hex(of: Array("d\(directory) f\(index)".utf8)), "\(key)")
            }
        }
        let removed = try connection.execute(
            """
            SELECT count(*) FILTER (WHERE status = 'uploaded'),
                   count(*) FILTER (WHERE status NOT IN ('uploaded', 'permanent_failure')
                                       OR (status = 'permanent_failure' AND error_class <> 'file_missing'))
            FROM file_uploads WHERE rel_path ~ '^d1[0-9]/'
            """
        )
        let removedUploaded = removed.int(0, 0) ?? 0
        #expect(removed.int(0, 1) == 0, "a removed file recorded other than uploaded or file_missing")
        // What was uploaded before its directory went is in the bucket, and nothing else of theirs is.
        #expect(stored.count == 1000 + removedUploaded)
        try expectNothingLeftHalfDone(database.connect())
    }

    /// The ledger's disk fills up in the middle of a run that deletes uploaded files. The outcomes are still
    /// recorded (each rewrites its file row in place, in the room its page keeps), but the deletions, which need
    /// new rows, are refused with the database's reason, and nothing is deleted that the ledger could not record.
    /// Once there is room again the next run deletes them; every file is in the bucket, sent exactly once. A run
    /// that starts on the full disk stops before sending anything (exit 3).
    @Test func ledgerDiskFullWhileRecording() throws {
        guard getuid() == 0 else {
            Issue.record("this test mounts a small tmpfs for the ledger's tables and needs root (CI runs as root)")
            return
        }
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let disk = try SmallDisk(megabytes: 24, owner: "postgres")
        defer { disk.remove() }
        let admin = try PGConnection(
            conninfo: try #require(ProcessInfo.processInfo.environment["FLEET_TEST_DATABASE_URL"])
        )
        let tablespace = "ts_" + UUID().uuidString.prefix(8).lowercased()
        try admin.executeScript("CREATE TABLESPACE \(tablespace) LOCATION '\(disk.path)'")
        defer { try? admin.executeScript("DROP TABLESPACE IF EXISTS \(tablespace)") }
        let database = try TestDatabase(tablespace: tablespace)
        defer { database.drop() }
        _ = try database.ledger()

        var expected: [String: String] = [:]
        for index in 0..<2000 {
            let text = "record \(index) " + String(repeating: "x", count: index % 500)
            try scratch.write("data/r\(index % 10)/f\(index).log", text)
            expected[s3.prefix + "r\(index % 10)/f\(index).log"] = SHA256.hex(of: Array(text.utf8))
        }
        let requestLog = scratch.url.appendingPathComponent("requests.log")
        let proxy = try OutageProxy(target: s3.endpoint, requestLog: requestLog)
        try proxy.latency(milliseconds: 10)
        let config = try configFile(
            scratch,
            s3,
            upload: #"{ "workers": 4, "delete_after_upload": true }"#,
            endpoint: proxy.endpoint
        )
        let connection = try database.connect()

        let first = try CLI.start(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        #expect(waitForUploads(connection, atLeast: 300) >= 300)
        disk.fill()
        let full = first.wait()

        #expect(full.status == 0, "\(full.stderr)")
        #expect(full.stderr.contains("No space left on device"), "\(full.stderr)")
        #expect(full.stderr.contains("the ledger cannot record their deletion"), "\(full.stderr)")
        // Only files the ledger records as uploaded may be gone from the disk.
        let recorded = try connection.execute(
            "SELECT rel_path FROM file_uploads WHERE status = 'uploaded' AND checksum_sha256 IS NOT NULL"
        )
        let recordedPaths = Set((0..<recorded.rowCount).compactMap { recorded.string($0, 0) })
        let deleted = expected.keys.map { String($0.dropFirst(s3.prefix.count)) }.filter {
            !FileManager.default.fileExists(atPath: scratch.url.appendingPathComponent("data/" + $0).path)
        }
        #expect(!deleted.isEmpty)
        #expect(deleted.filter { !recordedPaths.contains($0) }.isEmpty, "deleted without an uploaded row")

        try scratch.write("data/late/new.log", "written while the ledger's disk was full")
        let stopped = try runUpload(config, database, s3)
        // Refused with the server's reason, which depends on what it first fails to write: the session's error, or
        // the connection's when not even a session can be opened. Either names the ledger.
        #expect(stopped.status == 3, "\(stopped.stderr)")
        #expect(stopped.stderr.contains("ledger at"), "\(stopped.stderr)")
        expected[s3.prefix + "late/new.log"] = SHA256.hex(of: Array("written while the ledger's disk was full".utf8))

        disk.empty()
        let second = try runUpload(config, database, s3)

        #expect(second.status == 0, "\(second.stderr)")
        let left = expected.keys.filter {
            FileManager.default.fileExists(
                atPath: scratch.url.appendingPathComponent("data/" + String($0.dropFirst(s3.prefix.count))).path
            )
        }
        #expect(left.isEmpty, "files the second run did not delete: \(left.count)")
        let stored = try bucketContents(s3)
        #expect(stored.count == expected.count, "objects in the bucket")
        #expect(expected.filter { stored[$0.key]?.1 != $0.value }.count == 0, "objects whose bytes differ")
        try expectNothingLeftHalfDone(database.connect())
        // Each key sent once: the second run settled what the first left `uploading` without sending it again.
        let puts = try OutageProxy.forwardedRequests(loggedIn: requestLog).filter { $0.method == "PUT" }
        #expect(puts.count == expected.count, "PUT requests for \(expected.count) files")
    }

    /// Writes a file whose name is given as bytes (it need not be UTF-8).
    private func writeFile(named name: [UInt8], in directory: URL, contents: [UInt8]) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = Array(directory.path.utf8) + [UInt8(ascii: "/")] + name
        let descriptor = path.withCPath { open($0, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        guard descriptor >= 0 else { throw TestEnvironmentError(description: "cannot create the file: \(errno)") }
        defer { close(descriptor) }
        #expect(contents.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) } == contents.count)
    }
}

/// A tmpfs of a few megabytes (root only), to run out of space on purpose.
struct SmallDisk {
    let path: String

    init(megabytes: Int, owner: String) throws {
        path = NSTemporaryDirectory() + "fleet-disk-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let mount = try CLI.runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
        guard mount.status == 0 else { throw TestEnvironmentError(description: "mount tmpfs: \(mount.stderr)") }
        let chown = try CLI.runTool("/bin/chown", ["\(owner):\(owner)", path])
        guard chown.status == 0 else { throw TestEnvironmentError(description: "chown: \(chown.stderr)") }
    }

    /// Writes a filler file until the disk is full.
    func fill() {
        _ = try? CLI.runTool("/bin/dd", ["if=/dev/zero", "of=\(path)/filler", "bs=64k"])
    }

    func empty() { try? FileManager.default.removeItem(atPath: path + "/filler") }

    func remove() {
        _ = try? CLI.runTool("/bin/umount", ["-l", path])
        try? FileManager.default.removeItem(atPath: path)
    }
}
