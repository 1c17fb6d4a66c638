import FleetAWS
import FleetLedger
import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// A run killed after S3 stored a compressed file but before the ledger heard of it: the claim it left is
/// settled against the bucket like any other, the object compared with the file compressed again.
@Suite struct ReconcilerCompressionTests {
    @Test func aDeadClaimOnACompressedFileIsConfirmedFromTheObjectItsRunSent() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let line = "2026-12-06T10:00:00.000Z [INFO] [/planning/node]: replanned around an obstacle\n"
        try Data(String(repeating: line, count: 2_000).utf8).write(to: tree.root.appendingPathComponent("run.log"))
        try tree.file("frame.bin", size: 3_000)
        var config = s3.config(source: tree.root.path)
        config.source?.compress = CompressSettings(codec: "zstd", include: ["*.log"])
        config.device = "rig-1"
        var session = UploadSession(config: config, configPath: nil, databaseURL: database.url, logger: quietLogger)
        session.environment = s3.environment
        let summary = try session.run(state: RunState(giveUpAfter: 600), progress: UploadProgress())
        try #require(summary.status == .completed)
        let connection = try database.connect()
        let sent = try connection.execute(
            "SELECT sent_bytes FROM file_uploads WHERE s3_key LIKE '%run.log.zst' AND status = 'uploaded'"
        )
        let sentBytes = try #require(sent.int64(0, 0))
        #expect(sentBytes < Int64(line.utf8.count * 2_000) / 4)
        // The answers were lost: both rows are back to `uploading`, held by a process that is gone.
        try connection.execute(
            """
            UPDATE file_uploads SET status = 'uploading', claimed_by = 'gone-host:4194304', claimed_at = now(),
                                    checksum_sha256 = NULL, etag = NULL, sent_bytes = NULL, finished_at = NULL
            WHERE session_id = \(summary.sessionID)
            """
        )

        let ledger = try database.ledger()
        let claims = try ledger.claims(sessionID: summary.sessionID, heldBy: "gone-host:4194304")
        #expect(claims.count == 2)
        #expect(claims.filter { $0.job.codec != nil }.map(\.job.key).allSatisfy { $0.hasSuffix("run.log.zst") })
        let context = try S3Context(config: config, environment: s3.environment, homeDirectory: "/nonexistent-home")
        let report = try Reconciler(context: context, logger: quietLogger).settle(claims, ledger: ledger)

        #expect(report.confirmedUploaded == 2)
        let rows = try connection.execute(
            """
            SELECT s3_key, status, checksum_sha256, size_bytes, sent_bytes FROM file_uploads
            WHERE session_id = \(summary.sessionID) ORDER BY s3_key
            """
        )
        let logSHA256 = SHA256()
        logSHA256.update(Array(String(repeating: line, count: 2_000).utf8))
        #expect(rows.rowCount == 2)
        #expect(rows.string(0, 0)?.hasSuffix("frame.bin") == true)
        #expect(rows.string(0, 1) == "uploaded")
        #expect(rows.string(1, 0)?.hasSuffix("run.log.zst") == true)
        #expect(rows.string(1, 1) == "uploaded")
        #expect(rows.string(1, 2) == logSHA256.finalize().hexString, "the original's checksum, not the copy's")
        #expect(rows.int64(1, 3) == Int64(line.utf8.count * 2_000))
        #expect(rows.int64(1, 4) == sentBytes)
    }
}
