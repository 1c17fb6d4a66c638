import FleetAWS
import FleetSystem
import Foundation
import Testing

@testable import FleetCore

struct KeyMapperTests {
    private static let noon = Timestamp(seconds: 1_700_670_600)  // 2023-11-22 16:30:00 UTC

    private static func mapper(
        template: String? = nil,
        bucket: String? = "fleet-data",
        prefix: String? = nil,
        timezone: String? = nil,
        firstDirIsBucket: Bool? = nil
    ) throws -> KeyMapper {
        let config = FleetConfig(
            project: ProjectSettings(name: "proj"),
            device: "car7",
            s3: S3Settings(bucket: bucket, prefix: prefix),
            source: SourceSettings(path: "/data"),
            keys: KeySettings(template: template, timezone: timezone, firstDirIsBucket: firstDirIsBucket)
        )
        return try KeyMapper(config: config)
    }

    private static func key(_ mapper: KeyMapper, _ path: String, mtime: Timestamp = noon) throws -> String {
        try mapper.place(source: "ros", relativePath: Array(path.utf8), mtime: mtime).key
    }

    // MARK: - Templates

    @Test func emptyPrefixGivesNoLeadingSlash() throws {
        let placement = try Self.mapper().place(source: "s", relativePath: Array("a/b.wav".utf8), mtime: Self.noon)
        #expect(placement == Placement(bucket: "fleet-data", key: "a/b.wav"))
    }

    @Test(arguments: [
        ("sets/2026", "sets/2026/a/b.wav"), ("sets/2026/", "sets/2026/a/b.wav"), ("/x//y/", "x/y/a/b.wav"),
    ])
    func prefixJoinsWithSingleSlashes(prefix: String, expected: String) throws {
        #expect(try Self.key(Self.mapper(prefix: prefix), "a/b.wav") == expected)
    }

    @Test func deviceDateSourceTemplateUsesUTCDateByDefault() throws {
        let mapper = try Self.mapper(template: "{device}/{date}/{source}/{relpath}")
        #expect(try Self.key(mapper, "run1/a.bag") == "car7/2023-11-22/ros/run1/a.bag")
    }

    @Test(arguments: [
        (1_700_668_799 as Int64, "2023-11-22"),  // 15:59:59 UTC is 23:59:59 in Shanghai
        (1_700_668_800, "2023-11-23"),  // 16:00:00 UTC is midnight in Shanghai
    ])
    func dateFollowsConfiguredTimeZoneAcrossMidnight(seconds: Int64, expected: String) throws {
        let mapper = try Self.mapper(template: "{date}/{relpath}", timezone: "Asia/Shanghai")
        #expect(try Self.key(mapper, "a.bag", mtime: Timestamp(seconds: seconds)) == "\(expected)/a.bag")
        let utc = try Self.mapper(template: "{date}/{relpath}", timezone: "UTC")
        #expect(try Self.key(utc, "a.bag", mtime: Timestamp(seconds: seconds)) == "2023-11-22/a.bag")
    }

    @Test(arguments: [
        (1_699_169_400 as Int64, "2023-11-05"),  // 07:30 UTC, still daylight time (-7): 00:30
        (1_699_255_800, "2023-11-05"),  // 07:30 UTC a day later, standard time (-8): 23:30 the day before
    ])
    func dateUsesTheZoneOffsetInForceAtTheFileTime(seconds: Int64, expected: String) throws {
        let mapper = try Self.mapper(template: "{date}/{relpath}", timezone: "America/Los_Angeles")
        #expect(try Self.key(mapper, "a.bag", mtime: Timestamp(seconds: seconds)) == "\(expected)/a.bag")
    }

    @Test func filenameAndProjectPlaceholdersFill() throws {
        let mapper = try Self.mapper(template: "{project}/{device}/{filename}")
        #expect(try Self.key(mapper, "deep/dir/a.wav") == "proj/car7/a.wav")
    }

    // MARK: - First directory names the bucket

    @Test func firstDirectoryNamesTheBucketAndTheRestIsTheKey() throws {
        let mapper = try Self.mapper(bucket: nil, firstDirIsBucket: true)
        let placement = try mapper.place(
            source: "s",
            relativePath: Array("lab-bucket/run1/a.wav".utf8),
            mtime: Self.noon
        )
        #expect(placement == Placement(bucket: "lab-bucket", key: "run1/a.wav"))
    }

    @Test func fileAtTheRootHasNoBucket() throws {
        let mapper = try Self.mapper(bucket: nil, firstDirIsBucket: true)
        #expect(throws: KeyError("not inside a bucket directory (the first directory names the bucket)")) {
            try Self.key(mapper, "loose.wav")
        }
    }

    @Test(arguments: ["Lab_Bucket", "ab", "-lab", "192.168.1.7", "a..b"])
    func invalidBucketDirectoryNameIsRefused(name: String) throws {
        let mapper = try Self.mapper(bucket: nil, firstDirIsBucket: true)
        #expect(throws: KeyError.self) { try Self.key(mapper, "\(name)/a.wav") }
        #expect(BucketName.problem(with: name) != nil)
    }

    @Test func bucketDirectoryNameThatIsNotUTF8IsRefused() throws {
        let mapper = try Self.mapper(bucket: nil, firstDirIsBucket: true)
        #expect(throws: KeyError("the first directory's name is not valid UTF-8, so it cannot name a bucket")) {
            try mapper.place(source: "s", relativePath: [0x61, 0xFF, 0x63, 0x2F, 0x61], mtime: Self.noon)
        }
    }

    // MARK: - Bytes to key text

    @Test func bytesThatAreNotUTF8BecomePercentEscapes() throws {
        // "raw/a\xFF%b\xC3.wav": the invalid bytes and, in such a name only, '%' itself are escaped.
        let path: [UInt8] = [0x72, 0x61, 0x77, 0x2F, 0x61, 0xFF, 0x25, 0x62, 0xC3, 0x2E, 0x77, 0x61, 0x76]
        let placement = try Self.mapper().place(source: "s", relativePath: path, mtime: Self.noon)
        #expect(placement.key == "raw/a%FF%25b%C3.wav")
    }

    @Test func validCharactersNextToInvalidBytesAreKept() {
        var bytes = Array("é日😀".utf8)
        bytes.append(0x80)
        bytes += Array(" +x".utf8)
        #expect(PathText.escaped(bytes) == "é日😀%80 +x")
        #expect(PathText.escaped([0x01, 0xFE]) == "\u{01}%FE")
        #expect(PathText.escaped([0xE6, 0x97]) == "%E6%97")  // a truncated sequence
    }

    @Test(arguments: ["a+b.wav", "100%.wav", "a%20b.wav", "with space.wav", "日本/データ.bag", "é😀.txt"])
    func validUTF8NamesAreUnchanged(name: String) throws {
        #expect(try Self.key(Self.mapper(), "dir/\(name)") == "dir/\(name)")
        #expect(PathText.escaped(Array(name.utf8)) == name)
    }

    // MARK: - Limits

    @Test func keyOfExactly1024BytesIsAccepted() throws {
        let name = String(repeating: "a", count: 1024)
        #expect(try Self.key(Self.mapper(), name) == name)
    }

    @Test func keyOver1024BytesIsRefused() throws {
        #expect(throws: KeyError("the key would be 1025 bytes; S3 allows 1024")) {
            try Self.key(Self.mapper(), String(repeating: "a", count: 1025))
        }
        #expect(throws: KeyError.self) {
            try Self.key(Self.mapper(prefix: "p"), String(repeating: "a", count: 1023))
        }
        // Multi-byte characters count in bytes, not characters.
        #expect(throws: KeyError.self) { try Self.key(Self.mapper(), String(repeating: "é", count: 513)) }
    }
}

struct BucketNameTests {
    @Test(arguments: ["fleet-data", "abc", "a.b-c.9", String(repeating: "a", count: 63), "1bucket", "192.168.1.x"])
    func acceptsValidName(name: String) {
        #expect(BucketName.problem(with: name) == nil)
    }

    @Test(arguments: [
        ("ab", "must be 3 to 63 characters long"),
        (String(repeating: "a", count: 64), "must be 3 to 63 characters long"),
        ("Fleet", "only lowercase letters, digits, '.' and '-' are allowed"),
        ("a_b", "only lowercase letters, digits, '.' and '-' are allowed"),
        ("dåta", "only lowercase letters, digits, '.' and '-' are allowed"),
        ("-ab", "must begin and end with a letter or digit"),
        ("ab.", "must begin and end with a letter or digit"),
        ("a..b", "'..', '.-' and '-.' are not allowed"),
        ("a.-b", "'..', '.-' and '-.' are not allowed"),
        ("10.0.0.1", "must not look like an IP address"),
    ])
    func refusesInvalidNameWithReason(name: String, reason: String) {
        #expect(BucketName.problem(with: name) == reason)
    }
}
