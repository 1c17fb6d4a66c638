import FleetSystem
import FleetTestSupport
import Foundation
import Synchronization
import Testing

@testable import FleetCore

/// A file that keeps growing for the whole run (a log still being written) is never stored as any of its
/// intermediate states: the run gives up on it as `failed` `file_changed`, and the bucket holds nothing under its
/// key, neither an object nor an open multipart upload.
@Suite(.serialized) struct ChangingFileCLITests {
    /// Appends to `url` every 5 ms until the returned stop is called.
    static func keepAppending(to url: URL) throws -> () -> Void {
        let handle = try FileHandle(forWritingTo: url)
        let stopped = Atomic(false)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            while !stopped.load(ordering: .relaxed) {
                handle.seekToEndOfFile()
                handle.write(Data(repeating: 0x42, count: 512))
                Thread.sleep(forTimeInterval: 0.005)
            }
            try? handle.close()
            done.signal()
        }
        return {
            stopped.store(true, ordering: .relaxed)
            done.wait()
        }
    }

    @Test(arguments: [("growing.log", 20), ("growing-parts.mcap", 12)])
    func aFileGrowingThroughoutTheRunLeavesNoObject(name: String, mebibytes: Int) throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/steady.txt", "written once")
        let url = scratch.url.appendingPathComponent("data/" + name)
        try Data((0..<(mebibytes << 20)).map { UInt8(truncatingIfNeeded: $0 >> 12) }).write(to: url)
        // 20 MiB goes in one PutObject (threshold 64 MiB) and 12 MiB in parts (threshold 8 MiB).
        let threshold = mebibytes == 20 ? 64 : 8
        let config = try configFile(
            scratch,
            s3,
            upload: """
                { "workers": 2, "max_attempts": 3, "backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.1,
                  "multipart_threshold_mb": \(threshold), "part_size_mb": 5 }
                """
        )
        let stop = try Self.keepAppending(to: url)
        let result = try runUpload(config, database, s3)
        stop()

        #expect(result.status == 1, "\(result.stderr)")
        let client = try s3.client()
        #expect(
            try client.headObject(bucket: s3.bucket, key: s3.prefix + name) == nil,
            "an object of a half-written file"
        )
        #expect(try client.headObject(bucket: s3.bucket, key: s3.prefix + "steady.txt") != nil)
        #expect(try client.listMultipartUploads(bucket: s3.bucket, prefix: s3.prefix).isEmpty)
        let connection = try database.connect()
        let row = try connection.execute(
            "SELECT status, error_class, etag FROM file_uploads WHERE rel_path = \(name)"
        )
        #expect(row.string(0, 0) == "failed")
        #expect(row.string(0, 1) == "file_changed")
        #expect(row.string(0, 2) == nil, "the ledger names no object")
        try expectNothingLeftHalfDone(connection)
    }
}
