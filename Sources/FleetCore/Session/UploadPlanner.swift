import Foundation
import Logging

/// Works out what an upload session would do, without uploading or recording anything.
///
/// Every source is scanned and every accepted file mapped to its bucket and key; the placements stream
/// through COPY into a temporary table that lives only in this connection, and one query compares them with
/// what the ledger records as stored. Memory stays flat however many files there are.
package struct UploadPlanner {
    package var config: FleetConfig
    package var logger: Logger
    /// How many sample keys the plan shows.
    package var sampleCount = 10
    /// How many unplaceable files and scan problems the plan lists by name.
    package var listedProblemCount = 10

    package init(config: FleetConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// - Parameters:
    ///   - progress: called every 10,000 files found, with the source's name and totals so far.
    /// - Throws: `ConfigError` for a source directory that does not exist; `LedgerError`; `ScanError`.
    package func plan(
        ledger: Ledger,
        now: Timestamp = .now(),
        progress: (String, ScanCounts) -> Void = { _, _ in }
    )
        throws -> UploadPlan
    {
        let started = Date()
        let mapper = try KeyMapper(config: config)
        let sources = config.effectiveSources
        let threshold = config.multipartThresholdBytes
        var plan = UploadPlan(
            project: config.project.name,
            device: config.effectiveDevice,
            configHash: config.hash,
            ledger: ledger.location,
            schemaVersion: try ledger.schemaVersion(),
            bucket: mapper.bucket,
            prefix: config.effectivePrefix,
            region: config.effectiveRegion,
            endpoint: config.s3.endpoint,
            keyTemplate: mapper.template.description,
            sources: sources.map { UploadPlan.Source(name: $0.name ?? "", path: $0.path) }
        )
        plan.multipartThresholdBytes = threshold
        plan.workers = config.effectiveWorkers

        let connection = ledger.connection
        try connection.executeScript(
            "CREATE TEMPORARY TABLE plan_files (bucket text, s3_key text, size_bytes bigint, mtime timestamptz)"
        )
        defer { try? connection.executeScript("DROP TABLE IF EXISTS plan_files") }

        let scanStarted = Date()
        try connection.copyIn("COPY plan_files (bucket, s3_key, size_bytes, mtime) FROM STDIN") { rows in
            plan.scan = try SourceWalk(config: config, mapper: mapper, logger: logger).run(
                now: now,
                problems: { problem in
                    if plan.scanProblems.count < listedProblemCount { plan.scanProblems.append(problem.message) }
                },
                progress: progress,
                accept: { walked in
                    guard walked.file.readable else { return }
                    let placement: Placement
                    switch walked.placement {
                    case .success(let value): placement = value
                    case .failure(let error):
                        plan.unplaceableCount += 1
                        if plan.unplaceable.count < listedProblemCount {
                            plan.unplaceable.append(.init(localPath: walked.displayPath, reason: error.description))
                        }
                        return
                    }
                    let file = walked.file
                    try rows.row([
                        .text(placement.bucket), .text(placement.key), .text(String(file.size)),
                        .text(file.mtime.iso8601),
                    ])
                    plan.toUploadFiles += 1
                    plan.toUploadBytes += file.size
                    if file.size >= threshold { plan.toUploadMultipart += 1 }
                    if plan.samples.count < sampleCount {
                        plan.samples.append(
                            .init(localPath: walked.displayPath, bucket: placement.bucket, key: placement.key)
                        )
                    }
                }
            )
        }
        plan.scanSeconds = Date().timeIntervalSince(scanStarted)

        let duplicates = try connection.execute(
            "SELECT count(*) FROM (SELECT 1 FROM plan_files GROUP BY bucket, s3_key HAVING count(*) > 1) AS d"
        )
        plan.duplicateKeys = duplicates.int(0, 0) ?? 0

        if let project = try ledger.project(named: config.project.name) {
            let stored = try connection.execute(
                """
                SELECT count(*), coalesce(sum(p.size_bytes), 0), count(*) FILTER (WHERE p.size_bytes >= \(threshold))
                FROM plan_files AS p
                JOIN stored_objects AS o
                  ON o.project_id = \(project.id) AND o.bucket = p.bucket AND o.s3_key = p.s3_key
                 AND o.size_bytes = p.size_bytes AND o.mtime = p.mtime
                """
            )
            plan.alreadyUploadedFiles = stored.int(0, 0) ?? 0
            plan.alreadyUploadedBytes = stored.int64(0, 1) ?? 0
            plan.toUploadFiles -= plan.alreadyUploadedFiles
            plan.toUploadBytes -= plan.alreadyUploadedBytes
            plan.toUploadMultipart -= stored.int(0, 2) ?? 0
        }
        plan.totalSeconds = Date().timeIntervalSince(started)
        logger.info(
            "planned upload",
            metadata: [
                "files.found": "\(plan.scan.found)", "files.to_upload": "\(plan.toUploadFiles)",
                "files.already_uploaded": "\(plan.alreadyUploadedFiles)",
            ]
        )
        return plan
    }
}

extension FileManager {
    func isReadableDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
            && isReadableFile(atPath: path)
    }
}

extension String {
    func appendingPathComponent(_ component: String) -> String {
        hasSuffix("/") ? self + component : self + "/" + component
    }
}
