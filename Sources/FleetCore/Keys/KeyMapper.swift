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
        template = try KeyTemplate(config.effectiveKeyTemplate)
        bucket = config.firstDirIsBucket ? nil : config.s3.bucket
        prefix = config.effectivePrefix
        device = config.effectiveDevice
        project = config.project.name
        timeZone = config.dateTimeZone
        runFolderSources = Set(
            config.effectiveSources.filter { $0.runFolders ?? ($0.name == "ros") }.compactMap(\.name)
        )
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
        let relpath = KeyMapper.keyText(path)
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

    /// A path's bytes as key text: unchanged when valid UTF-8, escaped otherwise (see the type's notes).
    package static func keyText(_ bytes: some Collection<UInt8>) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        var out = ""
        var rest = Array(bytes)[...]
        while !rest.isEmpty {
            let length = validSequenceLength(rest)
            if length > 0 {
                let scalarText = String(decoding: rest.prefix(length), as: UTF8.self)
                out += scalarText == "%" ? "%25" : scalarText
                rest = rest.dropFirst(length)
            } else {
                out += "%" + String(rest.first!, radix: 16, uppercase: true).leftPadded(to: 2)
                rest = rest.dropFirst()
            }
        }
        return out
    }

    /// The length of the valid UTF-8 sequence at the start, 0 if it is not valid.
    private static func validSequenceLength(_ bytes: ArraySlice<UInt8>) -> Int {
        guard let lead = bytes.first else { return 0 }
        let length: Int
        switch lead {
        case 0x00...0x7F: return 1
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF: length = 3
        case 0xF0...0xF4: length = 4
        default: return 0
        }
        guard bytes.count >= length else { return 0 }
        return String(validating: bytes.prefix(length), as: UTF8.self) == nil ? 0 : length
    }
}

/// S3's bucket naming rules.
package enum BucketName {
    /// Why `name` cannot be a bucket, or `nil` if it can.
    package static func problem(with name: String) -> String? {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return "must be 3 to 63 characters long" }
        let allowed = bytes.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 }
        guard allowed else { return "only lowercase letters, digits, '.' and '-' are allowed" }
        let alphanumeric: (UInt8) -> Bool = { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }
        guard alphanumeric(bytes.first!), alphanumeric(bytes.last!) else {
            return "must begin and end with a letter or digit"
        }
        guard !name.contains(".."), !name.contains(".-"), !name.contains("-.") else {
            return "'..', '.-' and '-.' are not allowed"
        }
        let parts = name.split(separator: ".")
        if parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) { return "must not look like an IP address" }
        return nil
    }
}
