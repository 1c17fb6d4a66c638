/// The label and value rows of a summary (`upload`, `retry`, `master status --session`).
///
/// The labels form one column as wide as the longest label plus two spaces (at least 16 characters), so a
/// long error class (`checksum_mismatch_after_retry`) never runs into its count.
package enum SummaryRows {
    /// The narrowest label column, so the usual summaries line up with each other.
    static let minimumLabelWidth = 16

    /// Each row as `  label   value`, indented by two spaces.
    package static func lines(_ rows: [(label: String, value: String)]) -> [String] {
        let width = max(minimumLabelWidth, (rows.map(\.label.count).max() ?? 0) + 2)
        return rows.map { row in
            "  " + row.label + String(repeating: " ", count: width - row.label.count) + row.value
        }
    }
}
