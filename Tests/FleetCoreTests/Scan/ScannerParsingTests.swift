import FleetAWS
import FleetSystem
import Testing

@testable import FleetCore

struct ScannerParsingTests {
    private static func parse(_ record: String) -> ScannedFile? { Scanner.parse(Array(record.utf8)[...]) }
    private static func time(_ text: String) -> Timestamp? { Scanner.parseTime(Array(text.utf8)[...]) }

    // MARK: - Scanner.parse

    @Test func parsesReadableFileRecord() throws {
        let file = try #require(Self.parse("f123 1700641021.6364862680 2049 131075 1 a/b.wav"))
        #expect(file.relativePath == Array("a/b.wav".utf8))
        #expect(file.size == 123)
        #expect(file.mtime == Timestamp(microseconds: 1_700_641_021_636_486))
        #expect(file.readable)
    }

    @Test(arguments: ["a/b c.wav", "a\tb.wav", "line\nbreak.wav", " leading space", "trailing space ", "x  y"])
    func keepsPathWhitespaceAsWritten(path: String) throws {
        let file = try #require(Self.parse("f7 1700000000.0000000000 2049 12 1 \(path)"))
        #expect(file.relativePath == Array(path.utf8))
        #expect(file.size == 7)
    }

    @Test func marksUnreadableFileRecord() throws {
        let file = try #require(Self.parse("u0 1700000000.5000000000 2049 13 1 secret.bin"))
        #expect(!file.readable)
        #expect(file.size == 0)
        #expect(file.mtime == Timestamp(microseconds: 1_700_000_000_500_000))
    }

    @Test func keepsPathBytesThatAreNotUTF8() throws {
        var record = Array("f1 1700000000.0 2049 14 1 dir/".utf8)
        record += [0xFF, 0xFE, 0x2E, 0x62, 0x69, 0x6E]
        let file = try #require(Scanner.parse(record[...]))
        #expect(file.relativePath == [0x64, 0x69, 0x72, 0x2F, 0xFF, 0xFE, 0x2E, 0x62, 0x69, 0x6E])
    }

    @Test func parsesLargeSizes() throws {
        let file = try #require(Self.parse("f5497558138880 1700000000.0 2049 15 1 big.bag"))
        #expect(file.size == 5_497_558_138_880)
    }

    @Test func parsesDeviceInodeAndLinkCount() throws {
        let file = try #require(Self.parse("f9 1700000000.0 64769 18446744073709551615 3 linked.log"))
        #expect(file.device == 64769)
        #expect(file.inode == UInt64.max)
        #expect(file.linkCount == 3)
        #expect(file.relativePath == Array("linked.log".utf8))
    }

    @Test(arguments: [
        "", "f", "f123", "f123 1700000000.0", "f123 1700000000.0 2049 1 1 ", "fabc 1700000000.0 2049 1 1 a",
        "f1 17x0.0 2049 1 1 a", "f1 1700000000.0 a", "f1 1700000000.0 2049 x 1 a", "f1 1700000000.0 2049 1 a",
    ])
    func rejectsMalformedRecord(record: String) {
        #expect(Self.parse(record) == nil)
    }

    // MARK: - Scanner.parseTime

    @Test(arguments: [
        ("1700641021.6364862680", 1_700_641_021_636_486 as Int64),
        ("1700641021.6364869999", 1_700_641_021_636_486),
        ("1700641021.1", 1_700_641_021_100_000),
        ("1700641021.000001", 1_700_641_021_000_001),
        ("1700641021", 1_700_641_021_000_000),
        ("0.0000000000", 0),
        ("-1.5000000000", -1_500_000),
    ])
    func parseTimeTruncatesToMicroseconds(text: String, microseconds: Int64) {
        #expect(Self.time(text) == Timestamp(microseconds: microseconds))
    }

    @Test(arguments: ["1700641021.5e3", "1.5x", "+1.0", "1-2", "", ".", "-"])
    func parseTimeRejectsNonNumbers(text: String) {
        #expect(Self.time(text) == nil)
    }

    // MARK: - ScanRules.verdict

    private static let now = Timestamp(seconds: 1_700_000_000)
    private static func file(_ path: String = "a.wav", ageMicroseconds: Int64) -> ScannedFile {
        ScannedFile(
            relativePath: Array(path.utf8),
            size: 1,
            mtime: Timestamp(microseconds: now.microseconds - ageMicroseconds)
        )
    }

    private static let day: Int64 = 86_400_000_000
    private static let maxAgeCases: [(Int64, ScanVerdict)] = [
        (3 * day, .accepted), (3 * day - 1, .accepted), (3 * day + 1, .tooOld), (30 * day, .tooOld),
    ]

    @Test(arguments: maxAgeCases)
    func maxAgeDaysBoundaryIsInclusive(age: Int64, expected: ScanVerdict) {
        let rules = ScanRules(maxAgeDays: 3)
        #expect(rules.verdict(for: Self.file(ageMicroseconds: age), now: Self.now) == expected)
    }

    @Test func fractionalMaxAgeDaysCountsHours() {
        let rules = ScanRules(maxAgeDays: 0.5)
        #expect(rules.verdict(for: Self.file(ageMicroseconds: 43_200_000_000), now: Self.now) == .accepted)
        #expect(rules.verdict(for: Self.file(ageMicroseconds: 43_200_000_001), now: Self.now) == .tooOld)
    }

    private static let minAgeCases: [(Int64, ScanVerdict)] = [
        (60_000_000, .accepted), (60_000_001, .accepted), (59_999_999, .tooNew), (0, .tooNew), (-5_000_000, .tooNew),
    ]

    @Test(arguments: minAgeCases)
    func minAgeSecondsBoundaryIsStable(age: Int64, expected: ScanVerdict) {
        let rules = ScanRules(minAgeSeconds: 60)
        #expect(rules.verdict(for: Self.file(ageMicroseconds: age), now: Self.now) == expected)
    }

    @Test func noAgeRulesAcceptFilesFromTheFuture() {
        #expect(ScanRules().verdict(for: Self.file(ageMicroseconds: -Self.day), now: Self.now) == .accepted)
    }

    @Test func patternExclusionComesBeforeAgeChecks() throws {
        let rules = ScanRules(
            filter: GlobFilter(exclude: [try GlobPattern("*.tmp")]),
            minAgeSeconds: 60,
            maxAgeDays: 1
        )
        #expect(rules.verdict(for: Self.file("x.tmp", ageMicroseconds: 0), now: Self.now) == .excludedByPattern)
        #expect(
            rules.verdict(for: Self.file("x.tmp", ageMicroseconds: 9 * Self.day), now: Self.now) == .excludedByPattern
        )
        #expect(rules.verdict(for: Self.file("x.wav", ageMicroseconds: 3_600_000_000), now: Self.now) == .accepted)
    }

    @Test func includeListLeavesOtherFilesOut() throws {
        let rules = ScanRules(filter: GlobFilter(include: [try GlobPattern("*.bag")]))
        #expect(rules.verdict(for: Self.file("run/a.bag", ageMicroseconds: 0), now: Self.now) == .accepted)
        #expect(rules.verdict(for: Self.file("run/a.log", ageMicroseconds: 0), now: Self.now) == .excludedByPattern)
    }

    // MARK: - ScanProblem(findMessage:)

    @Test(arguments: [
        (
            "find: '/data/private': Permission denied", ScanProblem.Kind.unreadableDirectory,
            "'/data/private': Permission denied"
        ),
        ("find: '/data/tmp/x': No such file or directory", .vanished, "'/data/tmp/x': No such file or directory"),
        (
            "find: File system loop detected; '/d/up' is part of the same file system loop as '/d'.", .symlinkLoop,
            "File system loop detected; '/d/up' is part of the same file system loop as '/d'."
        ),
        ("find: '/data/x': Input/output error", .other, "'/data/x': Input/output error"),
        ("something odd", .other, "something odd"),
    ])
    func classifiesFindMessage(line: String, kind: ScanProblem.Kind, message: String) {
        let problem = ScanProblem(findMessage: line)
        #expect(problem.kind == kind)
        #expect(problem.message == message)
        #expect(problem.description == message)
    }

    @Test func classifiesTooManySymlinkLevelsAsLoop() {
        // `find -L` reports a link that points at itself with ELOOP's text, which has no "loop" in it.
        #expect(ScanProblem(findMessage: "find: '/d/self': Too many levels of symbolic links").kind == .symlinkLoop)
    }
}
