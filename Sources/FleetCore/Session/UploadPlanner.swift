import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// Works out what an upload session would do, without uploading or recording anything.
///
/// Every source is scanned and every accepted file mapped to its bucket and key; the ledger compares the
/// placements, as they stream in, with what it records as stored. Memory stays flat however many files there are.
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
        // The same region and endpoint a real upload would use.
        let endpoint = try S3Context(config: config).endpoint
        let sources = config.resolved.sources
        let threshold = config.resolved.upload.multipartThresholdBytes
        var plan = UploadPlan(
            project: config.project.name,
            device: config.resolved.device,
            configHash: config.hash,
            ledger: ledger.location,
            schemaVersion: try ledger.schemaVersion(),
            bucket: mapper.bucket,
            prefix: config.resolved.s3.prefix,
            region: endpoint.region,
            endpoint: config.s3.endpoint,
            keyTemplate: mapper.template.description,
            sources: sources.map { UploadPlan.Source(name: $0.name ?? "", path: $0.path) }
        )
        plan.multipartThresholdBytes = threshold
        plan.workers = config.resolved.upload.workers
        if plan.workers == .auto {
            plan.autoWorkers = UploadPlan.AutoWorkers(
                initial: AdaptiveConcurrency.initialLevel,
                minimum: AdaptiveConcurrency.minimumLevel,
                maximum: AdaptiveConcurrency.maximumLevel
            )
        }

        var scanSeconds = 0.0
        let comparison = try ledger.comparePlan(
            projectName: config.project.name,
            endpoint: config.s3.endpoint,
            sharedPrefix: config.resolved.s3.sharedPrefix,
            multipartThreshold: threshold
        ) { rows in
            let scanStarted = Date()
            defer { scanSeconds = Date().timeIntervalSince(scanStarted) }
            plan.scan = try SourceWalk(config: config, mapper: mapper, logger: logger).run(
                now: now,
                problems: { problem in
                    // Hard links left out are counted under "left out", not as problems.
                    guard problem.kind != .secondHardLink else { return }
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
                    try rows.add(bucket: placement.bucket, key: placement.key, size: file.size, mtime: file.mtime)
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
        plan.scanSeconds = scanSeconds
        plan.duplicateKeys = comparison.duplicateKeys
        plan.alreadyUploadedFiles = comparison.storedFiles
        plan.alreadyUploadedBytes = comparison.storedBytes
        plan.otherProjectFiles = comparison.otherProjectFiles
        plan.otherProjectKeys = comparison.otherProjectKeys
        plan.toUploadFiles -= comparison.storedFiles + comparison.otherProjectFiles
        plan.toUploadBytes -= comparison.storedBytes + comparison.otherProjectBytes
        plan.toUploadMultipart -= comparison.storedMultipartFiles + comparison.otherProjectMultipartFiles
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
