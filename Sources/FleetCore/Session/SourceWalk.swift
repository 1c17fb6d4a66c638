import FleetSystem
import Foundation
import Logging

/// One accepted file of a source and where it goes.
package struct WalkedFile {
    /// The source's name, for `{source}` and the ledger.
    package var source: String
    package var file: ScannedFile
    /// The source directory and the relative path: the bytes to open.
    package var fullPath: [UInt8]
    /// `fullPath` as text (invalid UTF-8 as `%XX`), for messages and the ledger.
    package var displayPath: String
    /// The bucket and key, or why the file cannot have one.
    package var placement: Result<Placement, KeyError>
    /// How the file goes up compressed (its source's `compress`), or nil for as it is.
    package var compression: Compression? = nil
}

/// Walks every configured source with its scan rules and maps each accepted file to its bucket and key:
/// what `upload --dry-run` plans and what `upload` records.
package struct SourceWalk {
    package var config: FleetConfig
    package var mapper: KeyMapper
    package var logger: Logger
    /// Whether a file found again under another name (a hard link) is left out after its first name: on for
    /// what is recorded and uploaded, so one file goes up once; off where every name on disk counts (deletion
    /// policies).
    package var takesHardLinksOnce = true

    package init(config: FleetConfig, mapper: KeyMapper, logger: Logger) {
        self.config = config
        self.mapper = mapper
        self.logger = logger
    }

    /// Scans the sources one after the other.
    ///
    /// - Parameters:
    ///   - problems: called (after logging) for each problem `find` reports, and for each further name of a file
    ///     already taken (a hard link: left out, so the file is recorded and uploaded once).
    ///   - progress: called every 10,000 files found, with the source's name and its totals so far.
    ///   - accept: called for every file the rules accept, readable or not (check `file.readable`).
    /// - Returns: the scan totals of all sources.
    /// - Throws: `ConfigError` naming the key of a source directory that cannot be read (checked for every
    ///   source before any is scanned); `ScanError`; whatever `accept` throws.
    package func run(
        now: Timestamp,
        problems: (ScanProblem) -> Void = { _ in },
        progress: (String, ScanCounts) -> Void = { _, _ in },
        accept: (WalkedFile) throws -> Void
    ) throws -> ScanCounts {
        let sources = config.resolved.sources
        for (index, source) in sources.enumerated() where !FileManager.default.isReadableDirectory(source.path) {
            let key = config.sources != nil ? "sources[\(index)].path" : "source.path"
            throw ConfigError(keyPath: key, "no readable directory at '\(source.path)'")
        }
        var total = ScanCounts()
        // One file under several names (hard links, in one source or across sources) is taken once.
        let hardLinks = takesHardLinksOnce ? HardLinks() : nil
        for source in sources {
            let name = source.name ?? ""
            let root = Array(source.path.utf8).trailingSlashRemoved
            let compressionRule = CompressionRule(source)
            let scanner = Scanner(
                root: source.path,
                rules: rules(for: source),
                followSymlinks: config.resolved.scan.followSymlinks,
                hardLinks: hardLinks
            )
            let counts = try scanner.run(
                now: now,
                problems: { problem in
                    logger.warning("\(problem.kind.rawValue): \(problem.message)", metadata: ["source": "\(name)"])
                    problems(problem)
                },
                progress: { progress(name, $0) },
                accept: { file in
                    let fullPath = root + [UInt8(ascii: "/")] + file.relativePath
                    let placement: Result<Placement, KeyError>
                    do throws(KeyError) {
                        placement = .success(
                            try mapper.place(source: name, relativePath: file.relativePath, mtime: file.mtime)
                        )
                    } catch {
                        placement = .failure(error)
                    }
                    var walked = WalkedFile(
                        source: name,
                        file: file,
                        fullPath: fullPath,
                        displayPath: PathText.escaped(fullPath),
                        placement: placement
                    )
                    walked.compress(by: compressionRule)
                    try accept(walked)
                }
            )
            total = total + counts
        }
        return total
    }

    /// The source's own patterns together with the scan-wide ones.
    func rules(for source: SourceSettings) -> ScanRules {
        let scan = config.resolved.scan
        let include = ((source.include ?? []) + scan.include).compactMap { try? GlobPattern($0) }
        let exclude = ((source.exclude ?? []) + scan.exclude).compactMap { try? GlobPattern($0) }
        return ScanRules(
            filter: GlobFilter(include: include, exclude: exclude),
            minAgeSeconds: scan.minAgeSeconds,
            maxAgeDays: scan.maxAgeDays
        )
    }
}
