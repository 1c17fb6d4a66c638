import FleetCore
import FleetLedger
import FleetSystem
import Foundation

/// `master status`'s output: the fleet or one session, as aligned tables for people or as JSON.
package enum StatusReport {
    // MARK: - Fleet

    /// Recent sessions, failures by class, project totals and devices.
    ///
    /// - Parameter ledger: where the ledger is (`Ledger.location`), named in the first line.
    package static func text(_ status: FleetStatus, ledger: String) -> String {
        let f = Formatting.self
        var lines = ["Fleet status at \(f.utc(status.readAt)) UTC, ledger \(ledger)"]
        if status.sessions.isEmpty, status.projects.isEmpty, status.devices.isEmpty {
            lines.append("The ledger holds no sessions yet: nothing has been uploaded or recorded.")
            return lines.joined(separator: "\n")
        }

        lines += ["", "Recent sessions (\(scope(status.filter)), newest first)"]
        if status.sessions.isEmpty {
            lines.append("  none")
        } else {
            lines += sessionTable(status.sessions).lines
            if status.sessions.contains(where: \.stale) {
                let limit = Formatting.duration(SessionRow.staleAfterSeconds)
                lines.append(
                    "  stale: marked running, but silent for over \(limit): its process was killed or lost its host; "
                        + "retry --session ID closes it and puts its files back."
                )
            }
            if status.sessions.contains(where: { $0.totals == nil }) {
                lines.append("  Running sessions show their totals when they end; --session ID counts them now.")
            }
        }

        lines += ["", "Failures by class in the sessions above"]
        if status.failuresByClass.isEmpty {
            lines.append("  none")
        } else {
            var table = Table(["CLASS": .left, "FILES": .right])
            for (errorClass, count) in sortedByCount(status.failuresByClass) {
                table.append([errorClass.isEmpty ? "(no class)" : errorClass, f.count(count)])
            }
            lines += table.lines
        }

        lines += ["", "Projects: sessions started in the last \(status.projectWindowDays) days"]
        if status.projects.isEmpty {
            lines.append("  none")
        } else {
            var table = Table([
                "PROJECT": .left, "SESSIONS": .right, "UPLOADED": .right, "BYTES UP": .right, "FAILED": .right,
                "LAST SESSION (UTC)": .left,
            ])
            for project in status.projects {
                table.append([
                    project.name, f.count(project.sessions), f.count(Int(project.uploadedFiles)),
                    f.bytes(project.uploadedBytes), f.count(Int(project.failedFiles)),
                    project.lastSessionAt.map(f.utc) ?? "never",
                ])
            }
            lines += table.lines
        }

        lines += ["", "Devices"]
        if status.devices.isEmpty {
            lines.append("  none")
        } else {
            lines += deviceTable(status.devices).lines
        }

        lines += ["", "Server connections to this database by application (this one left out)"]
        if status.connections.isEmpty {
            lines.append("  none")
        } else {
            var table = Table([
                "APPLICATION": .left, "CONNECTIONS": .right, "ACTIVE": .right, "IN TRANSACTION": .right,
                "IDLE": .right,
            ])
            for group in status.connections {
                table.append([
                    group.application.flatMap { $0.isEmpty ? nil : $0 } ?? "(unnamed)",
                    f.count(group.total), f.count(group.active), f.count(group.idleInTransaction), f.count(group.idle),
                ])
            }
            lines += table.lines
            if status.connections.contains(where: { $0.stateHidden > 0 }) {
                lines.append(
                    "  Other roles' connections count in CONNECTIONS only: their state shows to a role granted "
                        + "pg_read_all_stats."
                )
            }
        }
        return lines.joined(separator: "\n")
    }

    /// One object: `read_at`, `filter`, `sessions`, `failures_by_class`, `project_window_days`, `projects`,
    /// `devices`, `connections`.
    package static func json(_ status: FleetStatus) -> String { encode(status) }

    /// `latest 20, project survey, device rig-1`.
    private static func scope(_ filter: StatusFilter) -> String {
        var parts = ["latest \(filter.limit)"]
        if let project = filter.project { parts.append("project \(project)") }
        if let device = filter.device { parts.append("device \(device)") }
        return parts.joined(separator: ", ")
    }

    private static func sessionTable(_ sessions: [FleetStatus.Session]) -> Table {
        let f = Formatting.self
        var table = Table([
            "ID": .right, "PROJECT": .left, "DEVICE": .left, "KIND": .left, "STATUS": .left, "STARTED (UTC)": .left,
            "DURATION": .right, "FILES": .right, "UPLOADED": .right, "SKIPPED": .right, "FAILED": .right,
            "BYTES UP": .right, "FILES/S": .right, "BYTES/S": .right,
        ])
        for session in sessions {
            let totals = session.totals
            table.append([
                String(session.id), session.project, session.device ?? missing, session.kind,
                session.stale ? "stale" : session.status.rawValue,
                f.utc(session.startedAt), f.duration(session.durationSeconds),
                totals.map { f.count(Int($0.files)) } ?? missing,
                totals.map { f.count(Int($0.uploadedFiles)) } ?? missing,
                totals.map { f.count(Int($0.skippedFiles)) } ?? missing,
                totals.map { f.count(Int($0.failedFiles)) } ?? missing,
                totals.map { f.bytes($0.uploadedBytes) } ?? missing,
                session.filesPerSecond.map { String(format: "%.1f", $0) } ?? missing,
                session.bytesPerSecond.map { f.bytes(Int64($0)) + "/s" } ?? missing,
            ])
        }
        return table
    }

    private static func deviceTable(_ devices: [FleetStatus.Device]) -> Table {
        let f = Formatting.self
        var table = Table([
            "DEVICE": .left, "HOST": .left, "AGENT": .left, "LAST HEARTBEAT (UTC)": .left, "AGE": .right,
            "DISK": .right, "QUEUED FILES": .right, "QUEUED BYTES": .right, "LAST UPLOAD (UTC)": .left,
        ])
        for device in devices {
            table.append([
                device.name, device.hostname ?? missing, device.agentVersion ?? missing,
                device.lastHeartbeatAt.map(f.utc) ?? "never", device.heartbeatAgeSeconds.map(f.ago) ?? missing,
                device.diskUsedPercent.map { String(format: "%.1f%%", $0) } ?? missing,
                device.queueFiles.map { f.count(Int($0)) } ?? missing,
                device.queueBytes.map(f.bytes) ?? missing, device.lastUploadAt.map(f.utc) ?? "never",
            ])
        }
        return table
    }

    // MARK: - One session

    /// The session's summary in `upload`'s layout, then its failed files, retry rounds and trigger calls.
    package static func text(_ detail: SessionDetail) -> String {
        let f = Formatting.self
        let session = detail.record
        let totals = session.totals
        var lines = ["Session \(session.id): \(detail.stale ? "stale" : session.status.rawValue)"]
        var rows: [(label: String, value: String)] = []
        func row(_ label: String, _ value: String) { rows.append((label, value)) }
        row("project", "\(session.project) (device \(session.device ?? missing))")
        row("kind", "\(session.kind) on \(session.hostname) (pid \(session.pid))")
        row("source", session.localDirectory)
        row("destination", (session.bucket.map { "s3://\($0)" } ?? "s3://<first directory>") + "/" + session.prefix)
        row("started", f.utc(session.startedAt) + " UTC")
        if let finished = session.finishedAt {
            row("finished", f.utc(finished) + " UTC")
        } else {
            let age = f.duration(session.row.heartbeatAge(at: detail.readAt))
            row(
                "last heartbeat",
                f.utc(session.heartbeatAt) + " UTC"
                    + (detail.stale
                        ? " (stale: silent for \(age), its process was killed or lost its host; "
                            + "retry --session \(session.id) closes it)"
                        : " (still running)")
            )
        }
        row("duration", f.duration(session.durationSeconds))
        row("files", "\(f.count(totals.files)) files, \(f.bytes(totals.bytes))")
        row("uploaded", "\(f.count(totals.uploadedFiles)) files, \(f.bytes(totals.uploadedBytes))")
        row("skipped", "\(f.count(totals.skippedFiles)) files, \(f.bytes(totals.skippedBytes)) (already uploaded)")
        row("failed", "\(f.count(totals.failedFiles)) files, \(f.bytes(totals.failedBytes))")
        for (errorClass, count) in sortedByCount(totals.failuresByClass) {
            row("  \(errorClass.isEmpty ? "(no class)" : errorClass)", f.count(count))
        }
        if totals.unfinishedFiles > 0 { row("not finished", "\(f.count(totals.unfinishedFiles)) files") }
        if session.durationSeconds > 0 {
            let seconds = session.durationSeconds
            let filesPerSecond = Double(totals.uploadedFiles) / seconds
            row(
                "throughput",
                String(format: "%.1f files/s, ", filesPerSecond)
                    + f.bytes(Int64(Double(totals.uploadedBytes) / seconds))
                    + "/s"
            )
        }
        if let message = session.errorMessage { row("error", message.collapsedToOneLine) }
        lines += SummaryRows.lines(rows)

        lines += ["", failedFilesHeading(detail)]
        if detail.failedFiles.isEmpty {
            lines.append("  none")
        } else {
            var table = Table([
                "PATH": .left, "KEY": .left, "STATUS": .left, "CLASS": .left, "ATTEMPTS": .right, "HTTP": .right,
                "LAST ERROR": .left,
            ])
            for file in detail.failedFiles {
                table.append([
                    file.localPath, file.key, file.status, file.errorClass ?? missing, String(file.attempts),
                    file.httpStatus.map(String.init) ?? missing, file.errorMessage?.collapsedToOneLine ?? missing,
                ])
            }
            lines += table.lines
            if detail.failedFilesNotShown > 0 {
                lines.append("  … and \(f.count(detail.failedFilesNotShown)) more (--failed-limit N shows more)")
            }
        }

        lines += ["", "Processes"]
        if detail.processes.isEmpty {
            lines.append("  none recorded")
        } else {
            var table = Table([
                "PROCESS": .left, "ROLE": .left, "THREADS": .right, "JOINED (UTC)": .left, "LEFT (UTC)": .left,
                "UPLOADED": .right,
            ])
            for process in detail.processes {
                let left =
                    process.leftAt.map(f.utc)
                    ?? "at work (heartbeat \(f.duration(process.heartbeatAgeSeconds)) ago)"
                table.append([
                    process.worker, process.role, String(process.threads), f.utc(process.joinedAt), left,
                    f.count(Int(process.filesUploaded)),
                ])
            }
            lines += table.lines
        }

        lines += ["", "Retry rounds"]
        if detail.retryRounds.isEmpty {
            lines.append("  none")
        } else {
            var table = Table([
                "ROUND": .right, "STARTED (UTC)": .left, "FINISHED (UTC)": .left, "ATTEMPTED": .right,
                "UPLOADED": .right, "FAILED": .right,
            ])
            for round in detail.retryRounds {
                table.append([
                    String(round.round), f.utc(round.startedAt), round.finishedAt.map(f.utc) ?? "running",
                    f.count(round.filesAttempted), f.count(round.filesUploaded), f.count(round.filesFailed),
                ])
            }
            lines += table.lines
        }

        lines += ["", "Trigger calls"]
        if detail.triggerEvents.isEmpty {
            lines.append("  none")
        } else {
            var table = Table([
                "ATTEMPT": .right, "AT (UTC)": .left, "HTTP": .right, "LATENCY": .right, "RESULT": .left,
                "ERROR": .left,
            ])
            for event in detail.triggerEvents {
                table.append([
                    String(event.attempt), event.at.map(f.utc) ?? missing, event.httpStatus.map(String.init) ?? missing,
                    event.latencyMs.map { "\(f.count($0)) ms" } ?? missing,
                    event.succeeded ? "succeeded" : "failed", event.errorMessage?.collapsedToOneLine ?? missing,
                ])
            }
            lines += table.lines
        }
        return lines.joined(separator: "\n")
    }

    /// `SessionRecord`'s object with `failed_files`, `retry_rounds`, `trigger_events` and `processes` added.
    package static func json(_ detail: SessionDetail) -> String { encode(detail) }

    /// `Failed files (120, the first 50 shown)`.
    private static func failedFilesHeading(_ detail: SessionDetail) -> String {
        let total = detail.record.totals.failedFiles
        guard detail.failedFilesNotShown > 0 else { return "Failed files" }
        let shown = Formatting.count(detail.failedFiles.count)
        return "Failed files (\(Formatting.count(total)), the first \(shown) shown)"
    }

    // MARK: - Shared

    /// What a table shows for a value the ledger does not have.
    private static let missing = "-"

    /// Largest count first, then by name.
    private static func sortedByCount(_ counts: [String: Int]) -> [(key: String, value: Int)] {
        counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
    }

    private static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }
}

/// Rows under a header line, each column as wide as its widest cell, two spaces apart: text left-aligned,
/// numbers right-aligned.
struct Table {
    enum Alignment { case left, right }

    private let headers: [String]
    private let alignments: [Alignment]
    private var rows: [[String]] = []

    init(_ columns: KeyValuePairs<String, Alignment>) {
        headers = columns.map(\.key)
        alignments = columns.map(\.value)
    }

    mutating func append(_ cells: [String]) {
        precondition(cells.count == headers.count, "Table: \(cells.count) cells for \(headers.count) columns")
        rows.append(cells)
    }

    /// The header and the rows, indented by two spaces, without trailing blanks.
    var lines: [String] {
        let all = [headers] + rows
        let widths = headers.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { cells in
            var line = "  "
            for (column, cell) in cells.enumerated() {
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                line += (column > 0 ? "  " : "") + (alignments[column] == .left ? cell + padding : padding + cell)
            }
            while line.last == " " { line.removeLast() }
            return line
        }
    }
}
