import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// `master import-state --registry … [--queue …]`: what the vehicle daemon before fleet-upload knew, brought into
/// the ledger so that nothing it uploaded is sent again and nothing it had queued is forgotten.
///
/// - The registry (`{"files": {"<path>::<size>::<mtime>": {filepath, size, mtime, processed_at, …}}}`) lists the
///   files it uploaded. Each one under a source of the configuration gets the key that source gives it (the same
///   `KeyMapper` the agent uses) and becomes a `stored_objects` row without a checksum, so the agent's scan and
///   every session skip it. A file still on disk is recorded with the mtime it has there when its size is the
///   registry's and its mtime is the registry's to the millisecond (the registry kept it as a floating-point number
///   of seconds), so the agent's exact comparison holds; a file that changed since is left for the agent to
///   upload; a file that is gone is recorded as the registry describes it.
/// - The queue (a list of `{filepath, size, detected_at, attempts}`, or `{"files": [...]}`) lists files waiting
///   for upload. Each one still on disk as it was queued goes to `queued_files`: the agent takes it into its queue
///   when it starts, however old it is.
///
/// Both files are read and checked whole before the ledger is touched; each is then written in one transaction.
package struct RegistryImport {
    package var config: FleetConfig
    package var databaseURL: String
    package var environment = ProcessInfo.processInfo.environment
    package var logger: Logger

    /// How far a registry's mtime may be from the file's on disk and still be the same version.
    package static let mtimeTolerance: Int64 = 1000  // microseconds

    package struct Summary: Sendable, Equatable {
        package var registryEntries = 0
        /// Recorded in `stored_objects` now.
        package var recorded = 0
        /// The ledger knew the key already (an earlier import, or an upload by fleet-upload).
        package var alreadyKnown = 0
        /// Entries left out, by reason.
        package var registrySkipped: [String: Int] = [:]
        package var queueEntries = 0
        package var queued = 0
        package var alreadyQueued = 0
        package var queueSkipped: [String: Int] = [:]

        package init() {}
    }

    package init(config: FleetConfig, databaseURL: String, logger: Logger) {
        self.config = config
        self.databaseURL = databaseURL
        self.logger = logger
    }

    /// - Throws: `ConfigError` for a file that cannot be read or is not what the old daemon wrote, or a registry
    ///   none of whose files is under a source; `LedgerError` when the ledger cannot be used.
    package func run(registry registryPath: String?, queue queuePath: String?) throws -> Summary {
        var summary = Summary()
        let mapper = try KeyMapper(config: config)
        let sources = config.resolved.sources
        let follow = config.resolved.scan.followSymlinks

        var objects: [ImportedObject] = []
        var uploaded: Set<String> = []
        if let registryPath {
            let entries = try Self.registryEntries(
                try Self.readJSON(registryPath, what: "registry"),
                file: registryPath
            )
            summary.registryEntries = entries.count
            var outside = 0
            for entry in entries {
                guard let (source, relative) = Self.source(of: entry.path, in: sources) else {
                    outside += 1
                    summary.registrySkipped["outside every source of the configuration", default: 0] += 1
                    continue
                }
                var mtime = Timestamp(microseconds: entry.mtimeMicroseconds)
                if let now = FileVersion.current(at: Array(entry.path.utf8), followSymlinks: follow) {
                    guard now.size == entry.size,
                        abs(now.mtime.microseconds - entry.mtimeMicroseconds) <= Self.mtimeTolerance
                    else {
                        summary.registrySkipped[
                            "changed since the old daemon uploaded it (the agent uploads it)",
                            default: 0
                        ] += 1
                        continue
                    }
                    mtime = now.mtime
                }
                let placement: Placement
                do throws(KeyError) {
                    placement = try mapper.place(
                        source: source.name ?? "",
                        relativePath: Array(relative.utf8),
                        mtime: mtime
                    )
                } catch {
                    summary.registrySkipped["no valid key: \(error)", default: 0] += 1
                    continue
                }
                uploaded.insert(entry.path)
                objects.append(
                    ImportedObject(
                        bucket: placement.bucket,
                        key: placement.key,
                        size: entry.size,
                        mtime: mtime,
                        uploadedAt: entry.processedAt
                    )
                )
            }
            if outside == entries.count, let first = entries.first {
                throw ConfigError(
                    file: registryPath,
                    keyPath: nil,
                    "none of its \(entries.count) files is under a source of the configuration (the first is "
                        + "\(first.path)); import it with the configuration of the vehicle that wrote it"
                )
            }
        }

        var queued: [QueuedFile] = []
        if let queuePath {
            let entries = try Self.queueEntries(try Self.readJSON(queuePath, what: "queue"), file: queuePath)
            summary.queueEntries = entries.count
            for entry in entries {
                guard Self.source(of: entry.path, in: sources) != nil else {
                    summary.queueSkipped["outside every source of the configuration", default: 0] += 1
                    continue
                }
                guard !uploaded.contains(entry.path) else {
                    summary.queueSkipped["uploaded already (in the registry)", default: 0] += 1
                    continue
                }
                guard let now = FileVersion.current(at: Array(entry.path.utf8), followSymlinks: follow) else {
                    summary.queueSkipped["the file is gone", default: 0] += 1
                    continue
                }
                if let size = entry.size, size != now.size {
                    summary.queueSkipped["changed since it was queued (the agent finds it by its mtime)", default: 0] +=
                        1
                    continue
                }
                queued.append(
                    QueuedFile(
                        localPath: entry.path,
                        size: now.size,
                        mtime: now.mtime,
                        detectedAt: entry.detectedAt,
                        attempts: entry.attempts
                    )
                )
            }
        }

        let ledger = try Ledger(url: databaseURL, logger: logger)
        let context = try S3Context(config: config, environment: environment)
        let projectID = try ledger.upsertProject(config, region: context.endpoint.region, endpoint: config.s3.endpoint)
        if registryPath != nil {
            summary.recorded = try ledger.importRegistry(projectID: projectID, objects: objects)
            summary.alreadyKnown = objects.count - summary.recorded
        }
        if queuePath != nil, !queued.isEmpty {
            let deviceID = try ledger.upsertDevice(
                name: config.resolved.device,
                hostname: ProcessInfo.processInfo.hostName,
                agentVersion: FleetVersion.number
            )
            summary.queued = try ledger.importQueue(deviceID: deviceID, projectID: projectID, files: queued)
            summary.alreadyQueued = queued.count - summary.queued
        }
        return summary
    }

    // MARK: - Reading the old files

    struct RegistryEntry {
        var path: String
        var size: Int64
        var mtimeMicroseconds: Int64
        var processedAt: Timestamp?
    }

    struct QueueEntry {
        var path: String
        var size: Int64?
        var detectedAt: Timestamp?
        var attempts: Int
    }

    /// The source holding `path` and the path below it.
    static func source(of path: String, in sources: [SourceSettings]) -> (SourceSettings, String)? {
        for source in sources {
            let root = source.path.hasSuffix("/") ? String(source.path.dropLast()) : source.path
            if path.hasPrefix(root + "/"), path.count > root.count + 1 {
                return (source, String(path.dropFirst(root.count + 1)))
            }
        }
        return nil
    }

    static func readJSON(_ path: String, what: String) throws(ConfigError) -> ConfigValue {
        if let problem = ConfigLoader.fileProblem(path) {
            throw ConfigError(file: path, keyPath: nil, "cannot read the \(what): \(problem)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason =
                !FileManager.default.fileExists(atPath: path)
                ? "no such file"
                : !FileManager.default.isReadableFile(atPath: path) ? "permission denied" : "unreadable"
            throw ConfigError(file: path, keyPath: nil, "cannot read the \(what): \(reason)")
        }
        do throws(ConfigError) {
            return try ConfigValue.parseJSON(data)
        } catch {
            var located = error
            located.file = path
            throw located
        }
    }

    /// The registry's entries; the path, size and mtime come from each entry's fields, else from its key
    /// (`<path>::<size>::<mtime>`).
    static func registryEntries(_ document: ConfigValue, file: String) throws(ConfigError) -> [RegistryEntry] {
        guard case .object(let pairs) = document["files"] ?? .null else {
            throw ConfigError(file: file, keyPath: "files", "expected an object of uploaded files (the registry's)")
        }
        var entries: [RegistryEntry] = []
        entries.reserveCapacity(pairs.count)
        for (key, value) in pairs {
            let keyPath = "files[\"\(key.prefix(80))\"]"
            guard case .object = value else { throw ConfigError(file: file, keyPath: keyPath, "expected an object") }
            let parts = key.components(separatedBy: "::")
            let fromKey = parts.count >= 3 ? parts.dropLast(2).joined(separator: "::") : nil
            guard let path = value["filepath"]?.text ?? fromKey, path.hasPrefix("/") else {
                throw ConfigError(file: file, keyPath: keyPath + ".filepath", "expected an absolute path")
            }
            guard let size = value["size"]?.wholeNumber ?? (parts.count >= 3 ? Int64(parts[parts.count - 2]) : nil),
                size >= 0
            else {
                throw ConfigError(file: file, keyPath: keyPath + ".size", "expected a size in bytes")
            }
            guard let mtime = value["mtime"]?.number ?? (parts.count >= 3 ? Double(parts[parts.count - 1]) : nil),
                mtime.isFinite
            else {
                throw ConfigError(file: file, keyPath: keyPath + ".mtime", "expected seconds since 1970")
            }
            entries.append(
                RegistryEntry(
                    path: path,
                    size: size,
                    mtimeMicroseconds: Int64((mtime * 1_000_000).rounded()),
                    processedAt: value["processed_at"].flatMap(Self.time)
                )
            )
        }
        return entries
    }

    static func queueEntries(_ document: ConfigValue, file: String) throws(ConfigError) -> [QueueEntry] {
        let list: [ConfigValue]
        switch document {
        case .array(let items): list = items
        case .object:
            guard case .array(let items) = document["files"] ?? .null else {
                throw ConfigError(file: file, keyPath: "files", "expected a list of queued files")
            }
            list = items
        default:
            throw ConfigError(file: file, keyPath: nil, "expected a list of queued files")
        }
        var entries: [QueueEntry] = []
        for (index, item) in list.enumerated() {
            let keyPath = "[\(index)]"
            guard case .object = item else { throw ConfigError(file: file, keyPath: keyPath, "expected an object") }
            guard let path = item["filepath"]?.text, path.hasPrefix("/") else {
                throw ConfigError(file: file, keyPath: keyPath + ".filepath", "expected an absolute path")
            }
            entries.append(
                QueueEntry(
                    path: path,
                    size: item["size"]?.wholeNumber,
                    detectedAt: item["detected_at"].flatMap(Self.time),
                    attempts: Int(item["attempts"]?.wholeNumber ?? 0)
                )
            )
        }
        return entries
    }

    /// A time the old daemon wrote: seconds since 1970, or ISO 8601 text, in local time when it names no zone
    /// (Python's `datetime.now().isoformat()`).
    static func time(_ value: ConfigValue) -> Timestamp? {
        if let seconds = value.number { return Timestamp(microseconds: Int64((seconds * 1_000_000).rounded())) }
        guard var text = value.text else { return nil }
        let utc = text.hasSuffix("Z")
        if utc { text.removeLast() }
        guard let parsed = Timestamp(postgres: text) else { return nil }
        if utc || text.dropFirst(19).contains(where: { $0 == "+" || $0 == "-" }) { return parsed }
        let offset = TimeZone.current.secondsFromGMT(for: parsed.date)
        return Timestamp(microseconds: parsed.microseconds - Int64(offset) * 1_000_000)
    }
}

extension ConfigValue {
    fileprivate var text: String? {
        switch self {
        case .string(let text), .plain(let text): text
        default: nil
        }
    }

    fileprivate var number: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    fileprivate var wholeNumber: Int64? {
        switch self {
        case .integer(let value): value
        case .double(let value) where value.rounded() == value && abs(value) < 9e18: Int64(value)
        default: nil
        }
    }
}
