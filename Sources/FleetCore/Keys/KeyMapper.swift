import FleetAWS
import FleetSystem
import Foundation

/// Where one file lands: the bucket and the key.
package struct Placement: Sendable, Equatable {
    package var bucket: String
    package var key: String
}

/// Why a file cannot be given a key. The file is reported, never uploaded under a wrong name.
package struct KeyError: Error, Sendable, Equatable, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}

/// Turns a scanned file into its bucket and key under the configured layout.
///
/// File names are bytes; S3 keys are UTF-8. A name that is valid UTF-8 is kept as it is. In a path that is
/// not, each invalid byte becomes `%XX` and `%` itself becomes `%25`, so the key is valid and still says which
/// bytes the name held.
package struct KeyMapper: Sendable {
    package var template: KeyTemplate
    /// The configured bucket; `nil` when the first directory names it.
    package var bucket: String?
    package var prefix: String
    package var device: String
    package var project: String
    package var timeZone: TimeZone
    /// Sources whose first-level directories are run folders kept whole under one `{date}`.
    package var runFolderSources: Set<String>

    /// S3's limit on a key's length in bytes.
    package static let maximumKeyBytes = 1024

    package init(config: FleetConfig) throws(KeyTemplateError) {
        let resolved = config.resolved
        template = try KeyTemplate(resolved.keys.template)
        bucket = resolved.keys.firstDirIsBucket ? nil : config.s3.bucket
        prefix = resolved.s3.prefix
        device = resolved.device
        project = config.project.name
        timeZone = resolved.keys.timeZone
        runFolderSources = Set(resolved.sources.filter { $0.runFolders == true }.compactMap(\.name))
    }

    /// - Parameters:
    ///   - source: the source's name, for `{source}`.
    ///   - relativePath: the path below the source directory, as bytes.
    ///   - mtime: the file's modification time, for `{date}`.
    package func place(source: String, relativePath: [UInt8], mtime: Timestamp) throws(KeyError) -> Placement {
        var path = relativePath[...]
        var bucket = self.bucket ?? ""
        if self.bucket == nil {
            guard let slash = path.firstIndex(of: UInt8(ascii: "/")) else {
                throw KeyError("not inside a bucket directory (the first directory names the bucket)")
            }
            guard let name = String(validating: path[..<slash], as: UTF8.self) else {
                throw KeyError("the first directory's name is not valid UTF-8, so it cannot name a bucket")
            }
            if let problem = BucketName.problem(with: name) {
                throw KeyError("directory '\(name)' is not a valid bucket name: \(problem)")
            }
            bucket = name
            path = path[(slash + 1)...]
        }
        let relpath = PathText.escaped(path)
        let key = template.render { placeholder in
            switch placeholder {
            case .prefix: self.prefix
            case .relpath: relpath
            case .filename: relpath.split(separator: "/").last.map(String.init) ?? relpath
            case .device: device
            case .project: project
            case .source: source
            case .date: date(source: source, relativePath: path, mtime: mtime)
            }
        }
        guard !key.isEmpty else { throw KeyError("the key would be empty") }
        let length = key.utf8.count
        guard length <= KeyMapper.maximumKeyBytes else {
            throw KeyError("the key would be \(length) bytes; S3 allows \(KeyMapper.maximumKeyBytes)")
        }
        return Placement(bucket: bucket, key: key)
    }

    /// `{date}`: the file's mtime as a calendar date, except in a run folder (a first-level directory of a
    /// run-folder source) whose name starts with a date: then that date, so a run that crosses midnight stays
    /// in one folder.
    private func date(source: String, relativePath: ArraySlice<UInt8>, mtime: Timestamp) -> String {
        if runFolderSources.contains(source), let slash = relativePath.firstIndex(of: UInt8(ascii: "/")),
            let named = KeyMapper.leadingDate(relativePath[..<slash])
        {
            return named
        }
        return mtime.calendarDate(offsetSeconds: offset(at: mtime))
    }

    /// `2026-11-23` when a name starts with a plausible `YYYY-MM-DD` (ROS: `2026-11-23-15-30-00-123456-host`).
    static func leadingDate(_ name: ArraySlice<UInt8>) -> String? {
        let bytes = Array(name.prefix(10))
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            (1970...9999).contains(year), (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        if name.count > 10,
            ![UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "T")].contains(name[name.startIndex + 10])
        {
            return nil
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func offset(at time: Timestamp) -> Int {
        timeZone.identifier == "UTC" ? 0 : timeZone.secondsFromGMT(for: time.date)
    }
}
