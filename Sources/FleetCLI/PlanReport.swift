import ArgumentParser
import FleetCore
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// `upload --dry-run`'s output: the plan for people, or as JSON.
package enum PlanReport {
    /// Plans the run `config` describes (scans, maps every key, compares with the ledger; records nothing),
    /// with a progress line while it scans, and prints the plan.
    ///
    /// - Throws: `ExitCode` 3 when a source directory is not there (an unmounted disk is the environment, as in
    ///   the real run, which records the session failed); the ledger's and the scan's errors.
    package static func run(
        _ config: FleetConfig,
        databaseURL: String,
        json: Bool,
        command: String,
        logger: Logger
    ) throws {
        let ledger = try Ledger(url: databaseURL, logger: logger)
        let progress = ScanProgressLine()
        let plan: UploadPlan
        do {
            plan = try UploadPlanner(config: config, logger: logger).plan(ledger: ledger) { source, counts in
                progress.update("scanning \(source): \(Formatting.count(counts.found)) files found")
            }
        } catch let error as ConfigError
            where error.keyPath == "source.path"
            || (error.keyPath?.hasPrefix("sources[") == true && error.keyPath?.hasSuffix("].path") == true)
        {
            progress.finish()
            standardError("\(command): \(error)")
            throw ExitCode(ExitStatus.environment.rawValue)
        }
        progress.finish()
        standardOutput(json ? PlanReport.json(plan) : PlanReport.text(plan))
    }

    package static func text(_ plan: UploadPlan) -> String {
        let f = Formatting.self
        var lines: [String] = []
        func row(_ label: String, _ value: String) {
            lines.append("  " + label.padding(toLength: 18, withPad: " ", startingAt: 0) + value)
        }
        lines.append("Dry run: nothing is uploaded and nothing is recorded.")
        lines.append("")
        row("project", "\(plan.project) (device \(plan.device))")
        let target = plan.bucket.map { "s3://\($0)" } ?? "s3://<first directory>"
        row("destination", "\(target), region \(plan.region)\(plan.endpoint.map { ", endpoint \($0)" } ?? "")")
        row("key layout", plan.keyTemplate + (plan.prefix.isEmpty ? "" : "  (prefix \(plan.prefix))"))
        for source in plan.sources { row("source", "\(source.name)  \(source.path)") }
        row("ledger", "\(plan.ledger), schema version \(plan.schemaVersion)")
        row("config", "sha256 \(plan.configHash.prefix(16))…")
        lines.append("")
        let scan = plan.scan
        row("found", "\(f.count(scan.found)) files in \(f.duration(plan.scanSeconds))")
        var left: [String] = []
        if scan.excludedByPattern > 0 { left.append("\(f.count(scan.excludedByPattern)) by pattern") }
        if scan.tooNew > 0 { left.append("\(f.count(scan.tooNew)) too new (still changing)") }
        if scan.tooOld > 0 { left.append("\(f.count(scan.tooOld)) older than max age") }
        if scan.symlinksSkipped > 0 { left.append("\(f.count(scan.symlinksSkipped)) symbolic links") }
        if scan.hardLinksSkipped > 0 {
            left.append("\(f.count(scan.hardLinksSkipped)) hard links to files already taken")
        }
        if !left.isEmpty { row("left out", left.joined(separator: ", ")) }
        if scan.unreadableFiles > 0 { row("unreadable files", f.count(scan.unreadableFiles)) }
        if scan.problems > 0 {
            row(
                "scan problems",
                "\(f.count(scan.problems)) (\(plan.scanProblems.first ?? "")\(scan.problems > 1 ? ", …" : ""))"
            )
        }
        if plan.unplaceableCount > 0 {
            row("no valid key", "\(f.count(plan.unplaceableCount)) files")
            for item in plan.unplaceable { lines.append("      \(item.localPath): \(item.reason)") }
        }
        if plan.duplicateKeys > 0 {
            row("duplicate keys", "\(f.count(plan.duplicateKeys)) keys claimed by several files")
        }
        if plan.otherProjectFiles > 0 {
            row("others' keys", "\(f.count(plan.otherProjectFiles)) files refused: another project stores the key")
            for item in plan.otherProjectKeys {
                lines.append("      s3://\(item.bucket)/\(item.key): project \(item.project)")
            }
        }
        row(
            "already uploaded",
            "\(f.count(plan.alreadyUploadedFiles)) files, \(f.bytes(plan.alreadyUploadedBytes)) (ledger)"
        )
        row(
            "to upload",
            "\(f.count(plan.toUploadFiles)) files, \(f.bytes(plan.toUploadBytes))"
                + (plan.toUploadMultipart > 0
                    ? " (\(f.count(plan.toUploadMultipart)) multipart, ≥ \(f.bytes(plan.multipartThresholdBytes)))"
                    : "")
        )
        if let auto = plan.autoWorkers {
            row(
                "workers",
                "auto: \(f.count(auto.initial)) files in flight at the start, adjusted between "
                    + "\(f.count(auto.minimum)) and \(f.count(auto.maximum))"
            )
        } else {
            row("workers", "\(plan.workers) files in flight")
        }
        if !plan.samples.isEmpty {
            lines.append("")
            lines.append("  sample keys")
            for sample in plan.samples { lines.append("    \(sample.localPath) → s3://\(sample.bucket)/\(sample.key)") }
        }
        return lines.joined(separator: "\n")
    }

    package static func json(_ plan: UploadPlan) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: (try? encoder.encode(plan)) ?? Data(), as: UTF8.self)
    }
}
