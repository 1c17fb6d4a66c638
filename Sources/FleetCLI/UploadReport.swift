import FleetCore
import FleetSystem
import Foundation
import Logging

/// Progress while uploading and the summary at the end.
package final class UploadProgressDisplay: @unchecked Sendable {
    // `timer` and `lastLog` are only touched on `queue`.
    package let progress: UploadProgress
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private let queue = DispatchQueue(label: "fleet.progress")
    private var timer: (any DispatchSourceTimer)?
    private var lastLog = Date()
    private let logInterval: Double

    package init(progress: UploadProgress, logInterval: Double = 5) {
        self.progress = progress
        self.logInterval = logInterval
    }

    package func start() {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + 0.2, repeating: isTerminal ? 0.2 : 1)
        timer.setEventHandler { [weak self] in self?.tick() }
        timer.resume()
        queue.sync { self.timer = timer }
    }

    package func stop() {
        queue.sync {
            timer?.cancel()
            timer = nil
            if isTerminal { StandardStreams.writeError("\r\u{1B}[2K") }
        }
    }

    /// Runs `body`, which prints lines of its own, with the bar cleared so the two do not mix.
    package func pause(_ body: () -> Void) {
        queue.sync {
            if isTerminal { StandardStreams.writeError("\r\u{1B}[2K") }
            body()
        }
    }

    private func tick() {
        let line = UploadProgressDisplay.line(progress.snapshot, elapsed: Date().timeIntervalSince(progress.started))
        if isTerminal {
            StandardStreams.writeError("\r\u{1B}[2K" + line)
        } else if Date().timeIntervalSince(lastLog) >= logInterval {
            lastLog = Date()
            StandardStreams.writeError(line + "\n")
        }
    }

    /// `[#######-------]  41% 12,345/30,000 files  1.2 GiB  85.3 MiB/s  ETA 0:42  128 in flight  2 failed`
    package static func line(_ snapshot: UploadProgress.Snapshot, elapsed: Double) -> String {
        let f = Formatting.self
        let doneFiles = snapshot.uploadedFiles + snapshot.failedFiles
        let total = max(snapshot.plannedFiles + snapshot.failedFiles, doneFiles)
        let sentBytes = snapshot.uploadedBytes
        let fraction =
            snapshot.plannedBytes > 0
            ? min(1, Double(sentBytes) / Double(snapshot.plannedBytes))
            : (total > 0 ? Double(doneFiles) / Double(total) : 0)
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
        let rate = elapsed > 0 ? Double(sentBytes) / elapsed : 0
        var text =
            "\(bar) \(String(format: "%3.0f", fraction * 100))% \(f.count(doneFiles))/\(f.count(total))"
            + (snapshot.scanFinished ? "" : "+") + " files  \(f.bytes(sentBytes))  \(f.bytes(Int64(rate)))/s"
        if snapshot.scanFinished, rate > 0, snapshot.plannedBytes > sentBytes {
            text += "  ETA \(f.duration(Double(snapshot.plannedBytes - sentBytes) / rate))"
        }
        if snapshot.inFlightLevel > 0 { text += "  \(f.count(snapshot.inFlightLevel)) in flight" }
        if snapshot.skippedFiles > 0 { text += "  \(f.count(snapshot.skippedFiles)) skipped" }
        if snapshot.failedFiles > 0 { text += "  \(f.count(snapshot.failedFiles)) failed" }
        return text
    }
}

/// The summary table at the end of `upload`.
package enum UploadReport {
    package static func text(_ summary: UploadSummary) -> String {
        let f = Formatting.self
        let totals = summary.totals
        var lines: [String] = []
        var rows: [(label: String, value: String)] = []
        func row(_ label: String, _ value: String) { rows.append((label, value)) }
        lines.append("Session \(summary.sessionID): \(summary.status.rawValue)")
        row("project", "\(summary.project) (device \(summary.device))")
        row("destination", (summary.bucket.map { "s3://\($0)" } ?? "s3://<first directory>") + "/" + summary.prefix)
        row("uploaded", "\(f.count(totals.uploadedFiles)) files, \(f.bytes(totals.uploadedBytes))")
        if totals.sentBytes != totals.uploadedBytes {
            row("sent", "\(f.bytes(totals.sentBytes)) (compressed)")
        }
        row("skipped", "\(f.count(totals.skippedFiles)) files, \(f.bytes(totals.skippedBytes)) (already uploaded)")
        row("failed", "\(f.count(totals.failedFiles)) files")
        for (errorClass, count) in totals.failuresByClass.sorted(by: { $0.value > $1.value }) {
            row("  \(errorClass)", f.count(count))
        }
        if totals.unfinishedFiles > 0 {
            row("not finished", "\(f.count(totals.unfinishedFiles)) files (run retry or upload again)")
        }
        row("retries", f.count(summary.retries))
        row("duration", f.duration(summary.durationSeconds))
        row(
            "throughput",
            "\(String(format: "%.0f", summary.filesPerSecond)) files/s, \(f.bytes(Int64(summary.bytesPerSecond)))/s"
        )
        if let message = summary.message { row("error", message) }
        lines += SummaryRows.lines(rows)
        if totals.uploadedFiles == 0, totals.failedFiles == 0, totals.skippedFiles > 0 {
            lines.append("  Nothing to upload: every file is already in the ledger.")
        }
        return lines.joined(separator: "\n")
    }

    package static func json(_ summary: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: (try? encoder.encode(summary)) ?? Data(), as: UTF8.self)
    }

    /// What a process that joined a session did.
    package static func text(_ summary: JoinSummary) -> String {
        let f = Formatting.self
        let rate = summary.durationSeconds > 0 ? Double(summary.uploadedFiles) / summary.durationSeconds : 0
        let bytesRate = summary.durationSeconds > 0 ? Double(summary.uploadedBytes) / summary.durationSeconds : 0
        var lines = ["Joined session \(summary.sessionID) (\(summary.project)) as \(summary.worker)"]
        var rows: [(label: String, value: String)] = []
        func row(_ label: String, _ value: String) { rows.append((label, value)) }
        row("uploaded", "\(f.count(summary.uploadedFiles)) files, \(f.bytes(summary.uploadedBytes))")
        row("failed", "\(f.count(summary.failedFiles)) files")
        row("retries", f.count(summary.retries))
        row("duration", f.duration(summary.durationSeconds))
        row("throughput", "\(String(format: "%.0f", rate)) files/s, \(f.bytes(Int64(bytesRate)))/s")
        row(
            "session",
            summary.sessionStatus == .running
                ? "running (its opener closes it when every file is recorded)" : summary.sessionStatus.rawValue
        )
        if summary.interrupted { row("stopped", "interrupted; the files it held went back to the session") }
        lines += SummaryRows.lines(rows)
        return lines.joined(separator: "\n")
    }
}

extension UploadProgressDisplay {
    /// Runs `body` with the progress display on stderr and SIGINT/SIGTERM asking `state` to stop after the
    /// files in flight; the display is cleared when `body` returns or throws.
    package static func running<T>(
        state: RunState,
        progress: UploadProgress,
        logger: Logger,
        _ body: (UploadProgressDisplay) throws -> T
    ) throws -> T {
        let signals = SignalWatcher { signal in
            logger.notice("stopping after the files in flight (signal \(signal))")
            state.requestStop()
        }
        let display = UploadProgressDisplay(progress: progress)
        display.start()
        defer {
            display.stop()
            withExtendedLifetime(signals) {}
        }
        return try body(display)
    }
}
