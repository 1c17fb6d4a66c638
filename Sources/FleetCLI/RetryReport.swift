import FleetCore
import FleetLedger
import Foundation

/// Per-round lines and the final summary of `retry`.
package enum RetryReport {
    /// `round 2: 1,204 attempted, 1,200 uploaded, 4 failed in 0:12`
    package static func roundLine(_ round: RetrySummary.Round) -> String {
        let f = Formatting.self
        let record = round.record
        var line =
            "round \(record.round): \(f.count(record.filesAttempted)) attempted, \(f.count(record.filesUploaded)) "
            + "uploaded, \(f.count(record.filesFailed)) failed"
        if let seconds = record.durationSeconds { line += " in \(f.duration(seconds))" }
        if round.notAttempted > 0 { line += " (\(f.count(round.notAttempted)) not attempted)" }
        return line
    }

    package static func text(_ summary: RetrySummary) -> String {
        let f = Formatting.self
        let totals = summary.session.totals
        var lines = ["Session \(summary.session.id): \(summary.session.status.rawValue) after retry"]
        var rows: [(label: String, value: String)] = []
        func row(_ label: String, _ value: String) { rows.append((label, value)) }
        row("rounds", summary.rounds.isEmpty ? "none" : f.count(summary.rounds.count))
        row("attempted", f.count(summary.rounds.reduce(0) { $0 + $1.record.filesAttempted }) + " files")
        row("uploaded now", f.count(summary.rounds.reduce(0) { $0 + $1.record.filesUploaded }) + " files")
        row(
            "session",
            "\(f.count(totals.uploadedFiles)) uploaded, \(f.count(totals.skippedFiles)) skipped, "
                + "\(f.count(totals.failedFiles)) failed of \(f.count(totals.files)) files"
        )
        for (errorClass, count) in totals.failuresByClass.sorted(by: { $0.value > $1.value }) {
            row("  \(errorClass)", f.count(count))
        }
        row("result", endingText(summary))
        lines += SummaryRows.lines(rows)
        return lines.joined(separator: "\n")
    }

    private static func endingText(_ summary: RetrySummary) -> String {
        let left = Formatting.count(summary.remaining)
        switch summary.ending {
        case .nothingToRetry: return "nothing to retry"
        case .allUploaded: return "every retried file is uploaded"
        case .filesRemain: return "\(left) files still to retry"
        case .outOfAttempts: return "\(left) files are out of attempts (retry without --auto to try them again)"
        case .interrupted: return "interrupted; \(left) files still to retry"
        }
    }

    package static func json(_ summary: RetrySummary) -> String {
        struct Document: Encodable {
            var session: SessionRecord
            var rounds: [RetrySummary.Round]
            var ending: RetrySummary.Ending
            var remaining: Int
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let document = Document(
            session: summary.session,
            rounds: summary.rounds,
            ending: summary.ending,
            remaining: summary.remaining
        )
        return String(decoding: (try? encoder.encode(document)) ?? Data(), as: UTF8.self)
    }
}
