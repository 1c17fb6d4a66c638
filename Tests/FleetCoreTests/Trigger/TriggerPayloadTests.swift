import FleetSystem
import Foundation
import Testing

@testable import FleetCore
@testable import FleetLedger

struct TriggerPayloadTests {
    private func session(bucket: String? = "fleet-data", finished: Bool = true) -> SessionRecord {
        var totals = SessionTotals()
        totals.files = 10
        totals.bytes = 10_000
        totals.uploadedFiles = 6
        totals.uploadedBytes = 6_000
        totals.skippedFiles = 3
        totals.skippedBytes = 3_000
        totals.failedFiles = 1
        totals.failedBytes = 1_000
        totals.failuresByClass = ["network": 1]
        return SessionRecord(
            row: SessionRow(
                id: 42,
                project: "survey \"north\"",
                projectID: 1,
                device: "rig-1",
                deviceID: 2,
                configID: 3,
                kind: "upload",
                status: .completedWithErrors,
                hostname: "host",
                pid: 99,
                localDirectory: "/data/run 1",
                bucket: bucket,
                prefix: "raw/2026",
                startedAt: Timestamp(microseconds: 1_763_900_000_123_456),
                heartbeatAt: Timestamp(microseconds: 1_763_900_100_000_000),
                finishedAt: finished ? Timestamp(microseconds: 1_763_900_100_000_000) : nil,
                errorMessage: nil
            ),
            totals: totals
        )
    }

    /// Writes the payload and returns its text and the parsed document.
    private func write(
        _ session: SessionRecord,
        keyPages: ((Int64) throws -> [UploadedKey])? = nil
    ) throws -> (text: String, document: [String: Any]) {
        let file = try SpoolFile()
        try TriggerPayload.write(session, keyPages: keyPages, into: file)
        let region = try file.finish()
        var bytes = [UInt8](repeating: 0, count: Int(region.length))
        let read = bytes.withUnsafeMutableBytes { pread(region.descriptor, $0.baseAddress, $0.count, 0) }
        #expect(read == bytes.count)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        return (String(decoding: bytes, as: UTF8.self), document)
    }

    /// Serves `keys` in pages of `size`, recording the row id each call started after.
    private final class Pages {
        let keys: [UploadedKey]
        let size: Int
        var calls: [Int64] = []
        init(_ keys: [UploadedKey], size: Int) {
            self.keys = keys
            self.size = size
        }
        func next(after id: Int64) -> [UploadedKey] {
            calls.append(id)
            return Array(keys.filter { $0.id > id }.prefix(size))
        }
    }

    @Test func summaryKeepsThePredecessorsFieldsAndAddsTheSessionsState() throws {
        let (text, document) = try write(session())

        #expect(document["session_id"] as? Int == 42)
        #expect(document["bucket_name"] as? String == "fleet-data")
        #expect(document["s3_prefix"] as? String == "raw/2026")
        #expect(document["total_files"] as? Int == 10)
        #expect(document["files_uploaded"] as? Int == 6)
        #expect(document["total_size_bytes"] as? Int == 10_000)
        #expect(document["local_directory"] as? String == "/data/run 1")
        #expect(document["project"] as? String == "survey \"north\"")
        #expect(document["device"] as? String == "rig-1")
        #expect(document["kind"] as? String == "upload")
        #expect(document["status"] as? String == "completed_with_errors")
        #expect(document["files_skipped"] as? Int == 3)
        #expect(document["files_failed"] as? Int == 1)
        #expect(document["bytes_uploaded"] as? Int == 6_000)
        #expect(document["started_at"] as? String == "2025-11-23T12:13:20.123Z")
        #expect(document["finished_at"] as? String == "2025-11-23T12:15:00.000Z")
        #expect(document["keys"] == nil)
        #expect(document.count == 16)
        #expect(text.hasPrefix(#"{"session_id":42,"bucket_name":"fleet-data","#))
    }

    @Test func absentValuesAreNull() throws {
        var record = session(bucket: nil, finished: false)
        record.device = nil

        let (_, document) = try write(record)

        #expect(document["bucket_name"] is NSNull)
        #expect(document["device"] is NSNull)
        #expect(document["finished_at"] is NSNull)
    }

    @Test func awkwardKeysSurviveTheRoundTripAsStringsInOrder() throws {
        let awkward = [
            "plain.wav", "quote\"d.wav", "back\\slash.wav", "new\nline", "tab\tand\rreturn", "bell\u{07}\u{01}\u{1F}",
            "café/日本語.mp4", "emoji 🚗.jpg", "slash/and %2F + space", "del\u{7F}",
        ]
        let keys = awkward.enumerated().map {
            UploadedKey(id: Int64($0.offset + 1), bucket: "fleet-data", key: $0.element)
        }
        let pages = Pages(keys, size: 3)

        let (text, document) = try write(session(), keyPages: pages.next)

        #expect(document["keys"] as? [String] == awkward)
        #expect(pages.calls == [0, 3, 6, 9, 10])
        #expect(text.contains(#""bell\u0007\u0001\u001f""#))
        #expect(text.contains(#""new\nline""#))
        #expect(text.hasSuffix("]}"))
    }

    @Test func keysAreObjectsWhenTheFirstDirectoryNamesTheBucket() throws {
        let keys = [
            UploadedKey(id: 5, bucket: "bucket-a", key: "x/1.log"),
            UploadedKey(id: 9, bucket: "bucket-b", key: "y.log"),
        ]

        let (_, document) = try write(session(bucket: nil), keyPages: Pages(keys, size: 10).next)

        let listed = try #require(document["keys"] as? [[String: String]])
        #expect(listed == [["bucket": "bucket-a", "key": "x/1.log"], ["bucket": "bucket-b", "key": "y.log"]])
    }

    @Test func noUploadedKeysIsAnEmptyList() throws {
        let (text, document) = try write(session(), keyPages: Pages([], size: 10).next)

        #expect(document["keys"] as? [String] == [])
        #expect(text.hasSuffix(#""keys":[]}"#))
    }

    @Test(arguments: [
        ("", #""""#),
        ("a\"b", #""a\"b""#),
        ("a\\b", #""a\\b""#),
        ("\u{08}\u{0C}\n\r\t", #""\b\f\n\r\t""#),
        ("\u{00}\u{1B}", #""\u0000\u001b""#),
        ("é/✓", "\"é/✓\""),
    ])
    func quotedEscapesOnlyWhatJSONRequires(text: String, expected: String) {
        #expect(TriggerPayload.quoted(text) == expected)
    }
}
