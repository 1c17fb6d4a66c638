import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// The part size an upload started with is recorded with it, and a run that continues the upload keeps it, even
/// when `upload.part_size_mb` changed in between.
@Suite(.serialized) struct PartSizeCLITests {
    @Test func aResumedUploadKeepsThePartSizeItStartedWith() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let requestLog = scratch.url.appendingPathComponent("requests.log")
        let proxy = try OutageProxy(target: s3.endpoint, requestLog: requestLog)
        // 23 MiB: five parts of 5 MiB (the last 3 MiB), four of 6 MiB.
        let bytes = (0..<(23 << 20)).map { UInt8(truncatingIfNeeded: $0 >> 10 &+ $0) }
        let path = "data/drive/radar.bin"
        try scratch.write(path, "")
        try Data(bytes).write(to: scratch.url.appendingPathComponent(path))
        let config = try configFile(
            scratch,
            s3,
            upload: """
                { "workers": 1, "max_attempts": 1, "multipart_threshold_mb": 8, "part_size_mb": 5,
                  "part_concurrency": 1 }
                """,
            endpoint: proxy.endpoint
        )

        // Every part is refused: the upload is started and recorded, then the file fails.
        try proxy.errors(fraction: 1, status: 500, method: "PUT")
        let first = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        #expect(first.status == 1, "\(first.stderr)")
        try proxy.clear()

        // The same project with another part size.
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try text.replacingOccurrences(of: "\"part_size_mb\": 5", with: "\"part_size_mb\": 6")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let second = try CLI.run(
            "upload",
            ["--config", config, "--database", database.url],
            environment: s3.environment
        )
        #expect(second.status == 0, "\(second.stderr)")

        let key = s3.prefix + "drive/radar.bin"
        let object = try #require(try s3.client().headObject(bucket: s3.bucket, key: key))
        #expect(object.etag.hasSuffix("-5\""), "sent in \(object.etag) parts, not the five of 5 MiB it started with")
        #expect(try bucketContents(s3)[key]?.1 == SHA256.hex(of: bytes))
        let creates = try OutageProxy.forwardedRequests(loggedIn: requestLog).filter {
            $0.method == "POST" && $0.target.hasSuffix("?uploads=")
        }
        #expect(creates.count == 1, "a second multipart upload was started")
        let rows = try database.connect().execute(
            "SELECT status, part_size_bytes FROM file_uploads ORDER BY id"
        )
        #expect(rows.string(0, 0) == "failed" && rows.string(1, 0) == "uploaded")
        #expect(rows.int(1, 1) == 5 << 20, "the part size recorded")
    }
}
