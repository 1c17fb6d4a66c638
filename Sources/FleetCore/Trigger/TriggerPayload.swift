import FleetLedger

/// The JSON document `trigger` posts: the session's summary and, when asked, every uploaded key.
///
/// Fields, in this order:
/// - the predecessor's, unchanged: `session_id`, `bucket_name` (null when the first directory names the
///   bucket), `s3_prefix`, `total_files`, `files_uploaded`, `total_size_bytes` (every file of the session),
///   `local_directory`;
/// - `project`, `device` (null if none), `kind`, `status`, `files_skipped`, `files_failed`, `bytes_uploaded`,
///   `started_at`, `finished_at` (RFC 3339 in UTC with milliseconds; null while running);
/// - with keys, `keys`: the files the session uploaded, each once, in the order they were recorded
///   (`files_uploaded` entries). Plain key strings when the session has one bucket (`bucket_name`); objects
///   `{"bucket": …, "key": …}` when `bucket_name` is null. Skipped files (already uploaded before) are not
///   listed: the session that uploaded them announced them.
///
/// The document is written, never held whole in memory: keys arrive page by page from the ledger.
enum TriggerPayload {
    /// Writes the document for `session` into `file`.
    ///
    /// - Parameters:
    ///   - keyPages: for `keys`, returns the uploaded keys recorded after a row id (0 for the first page); an
    ///     empty page ends the list. Nil leaves `keys` out.
    /// - Returns: the number of keys written.
    @discardableResult
    static func write(
        _ session: SessionRecord,
        keyPages: ((_ afterID: Int64) throws -> [UploadedKey])?,
        into file: SpoolFile
    ) throws -> Int {
        let totals = session.totals
        let fields: [(String, String)] = [
            ("session_id", String(session.id)),
            ("bucket_name", quoted(session.bucket)),
            ("s3_prefix", quoted(session.prefix)),
            ("total_files", String(totals.files)),
            ("files_uploaded", String(totals.uploadedFiles)),
            ("total_size_bytes", String(totals.bytes)),
            ("local_directory", quoted(session.localDirectory)),
            ("project", quoted(session.project)),
            ("device", quoted(session.device)),
            ("kind", quoted(session.kind)),
            ("status", quoted(session.status.rawValue)),
            ("files_skipped", String(totals.skippedFiles)),
            ("files_failed", String(totals.failedFiles)),
            ("bytes_uploaded", String(totals.uploadedBytes)),
            ("started_at", quoted(session.startedAt.rfc3339)),
            ("finished_at", quoted(session.finishedAt?.rfc3339)),
        ]
        try file.append("{" + fields.map { quoted($0.0) + ":" + $0.1 }.joined(separator: ","))
        var count = 0
        if let keyPages {
            try file.append(#","keys":["#)
            let asObjects = session.bucket == nil
            var afterID: Int64 = 0
            while true {
                let page = try keyPages(afterID)
                guard let last = page.last else { break }
                var text = ""
                for item in page {
                    if count > 0 { text += "," }
                    text +=
                        asObjects
                        ? #"{"bucket":"# + quoted(item.bucket) + #","key":"# + quoted(item.key) + "}"
                        : quoted(item.key)
                    count += 1
                }
                try file.append(text)
                afterID = last.id
            }
            try file.append("]")
        }
        try file.append("}")
        return count
    }

    /// `text` as a JSON string: `"`, `\` and control characters escaped, everything else as it is (UTF-8).
    static func quoted(_ text: String) -> String {
        var bytes: [UInt8] = [0x22]
        bytes.reserveCapacity(text.utf8.count + 2)
        for byte in text.utf8 {
            switch byte {
            case 0x22: bytes += [0x5C, 0x22]
            case 0x5C: bytes += [0x5C, 0x5C]
            case 0x0A: bytes += [0x5C, UInt8(ascii: "n")]
            case 0x0D: bytes += [0x5C, UInt8(ascii: "r")]
            case 0x09: bytes += [0x5C, UInt8(ascii: "t")]
            case 0x08: bytes += [0x5C, UInt8(ascii: "b")]
            case 0x0C: bytes += [0x5C, UInt8(ascii: "f")]
            case ..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(0x22)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A JSON string, or `null`.
    static func quoted(_ text: String?) -> String { text.map { quoted($0) } ?? "null" }
}
