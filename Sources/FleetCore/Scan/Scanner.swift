import FleetSystem
import Foundation
import Logging
import Synchronization

/// One regular file found under a source directory.
package struct ScannedFile: Sendable, Equatable {
    /// The path below the source directory, as the file system's bytes.
    package var relativePath: [UInt8]
    package var size: Int64
    package var mtime: Timestamp
    /// Whether this process may read it (`access(2)`); an unreadable file is reported, not uploaded.
    package var readable: Bool
    /// `st_dev` and `st_ino`: which file this is, whatever its name.
    package var device: UInt64
    package var inode: UInt64
    /// `st_nlink`: more than 1 when other names (hard links) lead to the same file.
    package var linkCount: Int

    package init(
        relativePath: [UInt8],
        size: Int64,
        mtime: Timestamp,
        readable: Bool = true,
        device: UInt64 = 0,
        inode: UInt64 = 0,
        linkCount: Int = 1
    ) {
        self.relativePath = relativePath
        self.size = size
        self.mtime = mtime
        self.readable = readable
        self.device = device
        self.inode = inode
        self.linkCount = linkCount
    }
}

/// What the scan rules say about one file.
package enum ScanVerdict: Sendable, Equatable {
    case accepted
    case excludedByPattern
    /// Modified less than `minAgeSeconds` ago: probably still being written.
    case tooNew
    /// Modified before the `maxAgeDays` cutoff.
    case tooOld
}

/// The filters a scan applies, as pure logic.
package struct ScanRules: Sendable {
    package var filter: GlobFilter
    package var minAgeSeconds: Int
    package var maxAgeDays: Double?

    package init(filter: GlobFilter = GlobFilter(), minAgeSeconds: Int = 0, maxAgeDays: Double? = nil) {
        self.filter = filter
        self.minAgeSeconds = minAgeSeconds
        self.maxAgeDays = maxAgeDays
    }

    /// Judges a file against the rules at the instant `now`.
    ///
    /// A file exactly `maxAgeDays` old is still accepted (`mtime >= cutoff`, the boundary the predecessor got
    /// wrong); a file exactly `minAgeSeconds` old is stable.
    package func verdict(for file: ScannedFile, now: Timestamp) -> ScanVerdict {
        guard filter.admits(file.relativePath) else { return .excludedByPattern }
        if minAgeSeconds > 0, now.microseconds - file.mtime.microseconds < Int64(minAgeSeconds) * 1_000_000 {
            return .tooNew
        }
        if let maxAgeDays {
            let cutoff = now.microseconds - Int64((maxAgeDays * 86_400 * 1_000_000).rounded())
            if file.mtime.microseconds < cutoff { return .tooOld }
        }
        return .accepted
    }
}

/// Something `find` reported while walking the tree. None of these stops the scan.
package struct ScanProblem: Sendable, Equatable, CustomStringConvertible {
    package enum Kind: String, Sendable {
        case unreadableDirectory = "unreadable directory"
        case vanished = "vanished during the scan"
        case symlinkLoop = "symbolic link loop"
        /// Another name of a file the walk already took: left out, so one file is uploaded once.
        case secondHardLink = "hard link to a file already taken"
        case other = "scan problem"
    }
    package var kind: Kind
    package var message: String
    package var description: String { message }

    package init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    /// Classifies one line of `find`'s stderr (run under `LC_ALL=C`).
    package init(findMessage line: String) {
        message = line.hasPrefix("find: ") ? String(line.dropFirst(6)) : line
        if line.hasSuffix("Permission denied") {
            kind = .unreadableDirectory
        } else if line.hasSuffix("No such file or directory") {
            kind = .vanished
        } else if line.contains("loop") || line.hasSuffix("Too many levels of symbolic links") {
            kind = .symlinkLoop
        } else {
            kind = .other
        }
    }
}

/// Running totals of one scan.
package struct ScanCounts: Sendable, Equatable, Codable {
    /// Regular files found (before any filter).
    package var found = 0
    package var accepted = 0
    package var acceptedBytes: Int64 = 0
    package var excludedByPattern = 0
    package var tooNew = 0
    package var tooOld = 0
    /// Symbolic links not followed (or, when following, links that point nowhere).
    package var symlinksSkipped = 0
    /// Further names of a file already taken (hard links): left out, not uploaded again.
    package var hardLinksSkipped = 0
    package var unreadableFiles = 0
    package var problems = 0

    package init() {}

    package static func + (a: ScanCounts, b: ScanCounts) -> ScanCounts {
        var sum = a
        sum.found += b.found
        sum.accepted += b.accepted
        sum.acceptedBytes += b.acceptedBytes
        sum.excludedByPattern += b.excludedByPattern
        sum.tooNew += b.tooNew
        sum.tooOld += b.tooOld
        sum.symlinksSkipped += b.symlinksSkipped
        sum.hardLinksSkipped += b.hardLinksSkipped
        sum.unreadableFiles += b.unreadableFiles
        sum.problems += b.problems
        return sum
    }
}

package struct ScanError: Error, Sendable, CustomStringConvertible {
    package var description: String
}

/// Walks one source directory with `find`, streaming each accepted file to a handler.
///
/// `find -printf` writes size, mtime, device, inode, link count and relative path, NUL-terminated, so any file
/// name survives and the list never sits in memory: each record is parsed, judged and handed on as it arrives.
package struct Scanner: Sendable {
    package var root: String
    package var rules: ScanRules
    package var followSymlinks: Bool
    /// The files with several names already taken, shared by the scans of one session: an accepted file found
    /// here again under another name is left out (`hardLinksSkipped`) and reported as a problem of kind
    /// `secondHardLink`. `nil`: every name is accepted.
    package var hardLinks: HardLinks?
    /// Progress is reported after every this many files found.
    package var progressInterval = 10_000

    package init(root: String, rules: ScanRules, followSymlinks: Bool = false, hardLinks: HardLinks? = nil) {
        self.root = root
        self.rules = rules
        self.followSymlinks = followSymlinks
        self.hardLinks = hardLinks
    }

    /// Scans the tree.
    ///
    /// - Parameters:
    ///   - now: the instant ages are measured from.
    ///   - problems: called for each problem `find` reports (unreadable directory, vanished entry, loop).
    ///   - progress: called every `progressInterval` files found, with the totals so far.
    ///   - accept: called for every file the rules accept, readable or not (check `readable`). If it throws,
    ///     the scan stops and the error is rethrown.
    /// - Throws: `ScanError` if the root is not a directory or `find` cannot run; whatever `accept` throws.
    package func run(
        now: Timestamp,
        problems: (ScanProblem) -> Void = { _ in },
        progress: (ScanCounts) -> Void = { _ in },
        accept: (ScannedFile) throws -> Void
    ) throws -> ScanCounts {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) else {
            throw ScanError(description: "no such directory: \(root)")
        }
        guard isDirectory.boolValue else { throw ScanError(description: "not a directory: \(root)") }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: Scanner.findExecutable)
        process.arguments = [followSymlinks ? "-L" : "-H", root, "-mindepth", "1"] + Scanner.expression
        process.environment = ["LC_ALL": "C", "PATH": "/usr/bin:/bin"]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw ScanError(description: "cannot run \(Scanner.findExecutable): \(error.localizedDescription)")
        }

        // stderr is drained on its own thread so a tree full of unreadable directories cannot block find.
        let errorLines = Mutex<[String]>([])
        let drained = DispatchGroup()
        let errorHandle = errors.fileHandleForReading
        DispatchQueue.global().async(group: drained) {
            let data = errorHandle.readDataToEndOfFile()
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
            errorLines.withLock { $0 = lines }
        }

        var counts = ScanCounts()
        do {
            try readRecords(from: output.fileHandleForReading.fileDescriptor) { record in
                try handle(record, now: now, counts: &counts, problems: problems, progress: progress, accept: accept)
            }
        } catch {
            // SIGKILL, not terminate(): a child started from a Dispatch thread inherits its blocked SIGTERM.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            drained.wait()
            throw error
        }
        process.waitUntilExit()
        drained.wait()
        for line in errorLines.withLock({ $0 }) where !line.isEmpty {
            counts.problems += 1
            problems(ScanProblem(findMessage: line))
        }
        if process.terminationReason != .exit || (process.terminationStatus != 0 && counts.problems == 0) {
            throw ScanError(description: "find failed on \(root) (status \(process.terminationStatus))")
        }
        return counts
    }

    /// `f` readable file, `u` unreadable file, `l` symbolic link (not followed, or broken when following).
    private static let expression = [
        "(", "-type", "f", "(", "-readable", "-printf", "f%s %T@ %D %i %n %P\\0", "-o", "-printf",
        "u%s %T@ %D %i %n %P\\0", ")", ")", "-o", "(", "-type", "l", "-printf", "l0 0 0 0 1 %P\\0", ")",
    ]

    private static let findExecutable =
        ["/usr/bin/find", "/bin/find"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        } ?? "/usr/bin/find"

    private func handle(
        _ record: ArraySlice<UInt8>,
        now: Timestamp,
        counts: inout ScanCounts,
        problems: (ScanProblem) -> Void,
        progress: (ScanCounts) -> Void,
        accept: (ScannedFile) throws -> Void
    ) throws {
        guard let file = Scanner.parse(record) else {
            throw ScanError(
                description: "unexpected output from find: \(String(decoding: record.prefix(80), as: UTF8.self))"
            )
        }
        switch record.first {
        case UInt8(ascii: "l"):
            counts.symlinksSkipped += 1
            return
        default:
            break
        }
        counts.found += 1
        if counts.found % progressInterval == 0 { progress(counts) }
        switch rules.verdict(for: file, now: now) {
        case .excludedByPattern: counts.excludedByPattern += 1
        case .tooNew: counts.tooNew += 1
        case .tooOld: counts.tooOld += 1
        case .accepted:
            if file.linkCount > 1, let hardLinks {
                let path = root.appendingPathComponent(PathText.escaped(file.relativePath))
                if let first = hardLinks.take(file, path: path) {
                    counts.hardLinksSkipped += 1
                    problems(ScanProblem(kind: .secondHardLink, message: "\(path) is the same file as \(first)"))
                    return
                }
            }
            if file.readable {
                counts.accepted += 1
                counts.acceptedBytes += file.size
            } else {
                counts.unreadableFiles += 1
            }
            try accept(file)
        }
    }

    /// Parses `<kind><size> <seconds>.<fraction> <device> <inode> <links> <relative path>`.
    package static func parse(_ record: ArraySlice<UInt8>) -> ScannedFile? {
        guard let kind = record.first else { return nil }
        var rest = record.dropFirst()
        /// The next space-separated field, consumed.
        func field() -> ArraySlice<UInt8>? {
            guard let end = rest.firstIndex(of: UInt8(ascii: " ")) else { return nil }
            defer { rest = rest[(end + 1)...] }
            return rest[..<end]
        }
        func number<N: FixedWidthInteger>(_ text: ArraySlice<UInt8>?) -> N? {
            text.flatMap { N(String(decoding: $0, as: UTF8.self)) }
        }
        guard let size: Int64 = number(field()), let mtime = field().flatMap(parseTime),
            let device: UInt64 = number(field()), let inode: UInt64 = number(field()),
            let links: Int = number(field())
        else { return nil }
        let path = Array(rest)
        guard !path.isEmpty else { return nil }
        return ScannedFile(
            relativePath: path,
            size: size,
            mtime: mtime,
            readable: kind != UInt8(ascii: "u"),
            device: device,
            inode: inode,
            linkCount: links
        )
    }

    /// `1700641021.6364862680` → microseconds, truncated (as the ledger stores them).
    static func parseTime(_ text: ArraySlice<UInt8>) -> Timestamp? {
        var negative = false
        var seconds: Int64 = 0
        var micros: Int64 = 0
        var fractionDigits = -1
        var digits = 0
        for byte in text {
            switch byte {
            case UInt8(ascii: "-") where seconds == 0 && fractionDigits < 0: negative = true
            case UInt8(ascii: "."): fractionDigits = 0
            case 48...57:
                digits += 1
                let digit = Int64(byte - 48)
                if fractionDigits < 0 {
                    seconds = seconds * 10 + digit
                } else {
                    if fractionDigits < 6 { micros = micros * 10 + digit }
                    fractionDigits += 1
                }
            default: return nil
            }
        }
        guard digits > 0 else { return nil }
        if fractionDigits >= 0 && fractionDigits < 6 { for _ in fractionDigits..<6 { micros *= 10 } }
        let total = seconds * 1_000_000 + micros
        return Timestamp(microseconds: negative ? -total : total)
    }

    /// Reads NUL-terminated records from `fd` in 256 KiB chunks.
    private func readRecords(from fd: Int32, _ body: (ArraySlice<UInt8>) throws -> Void) throws {
        var chunk = [UInt8](repeating: 0, count: 256 * 1024)
        var carry: [UInt8] = []
        while true {
            let count: Int
            do {
                count = try chunk.withUnsafeMutableBytes { buffer throws(SystemCallError) in
                    try Syscall.call("read") { read(fd, buffer.baseAddress, buffer.count) }
                }
            } catch {
                throw ScanError(description: "reading find's output failed: \(error)")
            }
            if count == 0 { break }
            var start = 0
            for index in 0..<count where chunk[index] == 0 {
                if carry.isEmpty {
                    try body(chunk[start..<index])
                } else {
                    carry.append(contentsOf: chunk[start..<index])
                    try body(carry[...])
                    carry.removeAll(keepingCapacity: true)
                }
                start = index + 1
            }
            carry.append(contentsOf: chunk[start..<count])
        }
        if !carry.isEmpty { try body(carry[...]) }
    }
}
