import FleetSystem
import Foundation

/// One session with its totals counted from the file rows now: what `retry`, `trigger`, `master once` and
/// `master status --session` report. The row's fields read through it (`record.status`).
@dynamicMemberLookup
package struct SessionRecord: Sendable {
    package var row: SessionRow
    /// Counted from the file rows now (not the copy `closeSession` left on the session row).
    package var totals: SessionTotals

    package subscript<Value>(dynamicMember keyPath: KeyPath<SessionRow, Value>) -> Value { row[keyPath: keyPath] }

    package subscript<Value>(dynamicMember keyPath: WritableKeyPath<SessionRow, Value>) -> Value {
        get { row[keyPath: keyPath] }
        set { row[keyPath: keyPath] = newValue }
    }
}

// MARK: - JSON

/// The JSON keys of a session's totals, the same wherever a session is written (`SessionRecord`, the sessions
/// of `FleetStatus`).
enum SessionTotalsKey: String, CodingKey {
    case totalFiles = "total_files"
    case totalBytes = "total_size_bytes"
    case uploadedFiles = "files_uploaded"
    case uploadedBytes = "bytes_uploaded"
    case skippedFiles = "files_skipped"
    case skippedBytes = "bytes_skipped"
    case failedFiles = "files_failed"
    case failedBytes = "bytes_failed"
    case failuresByClass = "failures_by_class"
    case unfinishedFiles = "files_unfinished"
}

extension SessionRecord: Encodable {
    /// The row's object with the counted totals beside its fields.
    package func encode(to encoder: any Encoder) throws {
        try row.encode(to: encoder)
        var container = encoder.container(keyedBy: SessionTotalsKey.self)
        try container.encode(totals.files, forKey: .totalFiles)
        try container.encode(totals.bytes, forKey: .totalBytes)
        try container.encode(totals.uploadedFiles, forKey: .uploadedFiles)
        try container.encode(totals.uploadedBytes, forKey: .uploadedBytes)
        try container.encode(totals.skippedFiles, forKey: .skippedFiles)
        try container.encode(totals.skippedBytes, forKey: .skippedBytes)
        try container.encode(totals.failedFiles, forKey: .failedFiles)
        try container.encode(totals.failedBytes, forKey: .failedBytes)
        try container.encode(totals.failuresByClass, forKey: .failuresByClass)
        try container.encode(totals.unfinishedFiles, forKey: .unfinishedFiles)
    }
}
