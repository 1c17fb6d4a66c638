import Testing

@testable import FleetCore

struct GlobPatternTests {
    private static func matches(_ pattern: String, _ path: String) throws -> Bool {
        try GlobPattern(pattern).matches(Array(path.utf8))
    }

    @Test(arguments: [
        ("a.wav", true), ("raw/a.wav", true), ("x/y/z/a.wav", true), ("a.wav.bak", false), ("a.flac", false),
        ("raw.wav/a.txt", false),
    ])
    func matchesNameWithoutSlashAtAnyDepth(path: String, expected: Bool) throws {
        #expect(try Self.matches("*.wav", path) == expected)
    }

    @Test(arguments: [
        ("raw/a.wav", true), ("a.wav", false), ("x/raw/a.wav", false), ("raw/sub/a.wav", false),
    ])
    func matchesPatternWithSlashOnlyAtThatPath(path: String, expected: Bool) throws {
        #expect(try Self.matches("raw/*.wav", path) == expected)
    }

    @Test func leadingSlashOnlyAnchors() throws {
        #expect(try Self.matches("/a.wav", "a.wav"))
        #expect(try !Self.matches("/a.wav", "x/a.wav"))
    }

    @Test(arguments: [
        ("**/x", "x", true), ("**/x", "a/x", true), ("**/x", "a/b/c/x", true), ("**/x", "ax", false),
        ("**/x", "a/bx", false), ("a/**/b", "a/b", true), ("a/**/b", "a/x/b", true), ("a/**/b", "a/x/y/b", true),
        ("a/**/b", "ab", false), ("a/**/b", "a/xb", false), ("a/**/b", "b", false), ("**/*.wav", "a.wav", true),
        ("**/*.wav", "x/y/a.wav", true), ("raw/**", "raw/a/b/c", true), ("raw/**", "other/a", false),
    ])
    func globstarMatchesZeroOrMoreDirectories(pattern: String, path: String, expected: Bool) throws {
        #expect(try Self.matches(pattern, path) == expected)
    }

    @Test func singleStarDoesNotCrossSlash() throws {
        #expect(try !Self.matches("raw/*", "raw/a/b"))
        #expect(try Self.matches("raw/*", "raw/a"))
    }

    @Test(arguments: [
        ("a.wav", true), ("a.jpg", true), ("d/a.jpg", true), ("a.png", false), ("a.wavjpg", false),
    ])
    func bracesMatchAnyAlternative(path: String, expected: Bool) throws {
        #expect(try Self.matches("*.{wav,jpg}", path) == expected)
    }

    @Test(arguments: [
        ("x/y/a.wav", true), ("a.wav", true), ("raw/b.bag", true), ("x/raw/b.bag", false), ("b.bag", false),
    ])
    func eachBraceAlternativeIsAnchoredOnItsOwn(path: String, expected: Bool) throws {
        #expect(try Self.matches("{*.wav,raw/*.bag}", path) == expected)
    }

    @Test func leadingSlashAnchorsEveryAlternative() throws {
        #expect(try Self.matches("/{a,b}.wav", "b.wav"))
        #expect(try !Self.matches("/{a,b}.wav", "x/b.wav"))
    }

    @Test func nestedAndEmptyBracesExpand() throws {
        #expect(try Self.matches("a{b,c{d,e}}f", "acef"))
        #expect(try Self.matches("a{b,c{d,e}}f", "abf"))
        #expect(try !Self.matches("a{b,c{d,e}}f", "acf"))
        #expect(try Self.matches("log{,.1}", "log"))
        #expect(try Self.matches("log{,.1}", "log.1"))
    }

    @Test(arguments: [
        ("[!0-9]*", "a1", true), ("[!0-9]*", "1a", false), ("[^0-9]*", "1a", false), ("[0-9][0-9]", "42", true),
        ("[abc].txt", "b.txt", true), ("[abc].txt", "d.txt", false), ("[]]", "]", true), ("[!]]", "a", true),
        ("[a-]", "-", true),
    ])
    func bracketSetsMatchOneCharacterOfOrNotOfTheSet(pattern: String, path: String, expected: Bool) throws {
        #expect(try Self.matches(pattern, path) == expected)
    }

    @Test func negatedSetNeverMatchesSlash() throws {
        #expect(try !Self.matches("a[!x]b", "a/b"))
    }

    @Test func setMatchesNonASCIIRange() throws {
        #expect(try Self.matches("[à-ü].txt", "é.txt"))
        #expect(try !Self.matches("[à-ü].txt", "a.txt"))
    }

    @Test(arguments: [
        ("raw/a", true), ("raw/a/b/c.wav", true), ("raw", false), ("rawx/a", false), ("x/raw/a", false),
    ])
    func trailingSlashMatchesEverythingBelow(path: String, expected: Bool) throws {
        #expect(try Self.matches("raw/", path) == expected)
    }

    @Test func backslashEscapesWildcards() throws {
        #expect(try Self.matches(#"a\*b"#, "a*b"))
        #expect(try !Self.matches(#"a\*b"#, "axb"))
        #expect(try Self.matches(#"\?"#, "?"))
        #expect(try !Self.matches(#"\?"#, "x"))
        #expect(try Self.matches(#"\{a,b\}"#, "{a,b}"))
        #expect(try Self.matches(#"{a\,b,c}"#, "a,b"))
    }

    @Test func questionMarkMatchesOneUTF8CharacterNotOneByte() throws {
        #expect(try Self.matches("?.wav", "é.wav"))
        #expect(try Self.matches("?.wav", "日.wav"))
        #expect(try Self.matches("?.wav", "😀.wav"))
        #expect(try !Self.matches("??.wav", "é.wav"))
        #expect(try !Self.matches("?.wav", "ab.wav"))
        #expect(try !Self.matches("a?b", "a/b"))
    }

    @Test func starStepsOverWholeCharacters() throws {
        // A star that stopped inside "é" would leave a lone continuation byte for the negated set to accept.
        #expect(try !Self.matches("x*[!é]", "xé"))
        #expect(try Self.matches("x*[!é]", "xéa"))
        #expect(try !Self.matches("**[!é]", "a/é"))
    }

    @Test func matchesNamesThatAreNotUTF8() throws {
        let name: [UInt8] = [0x72, 0x61, 0x77, 0x2F, 0xFF, 0xFE, 0x2E, 0x77, 0x61, 0x76]  // raw/\xFF\xFE.wav
        #expect(try GlobPattern("*.wav").matches(name))
        #expect(try GlobPattern("raw/??.wav").matches(name))
        #expect(try !GlobPattern("raw/?.wav").matches(name))
        #expect(try GlobPattern("raw/[!a].wav").matches([0x72, 0x61, 0x77, 0x2F, 0xC3, 0x2E, 0x77, 0x61, 0x76]))
        #expect(try !GlobPattern("*.txt").matches(name))
    }

    @Test(arguments: ["[abc", "{a,b", #"abc\"#, "a}b", "", "[z-a]"])
    func malformedPatternThrows(pattern: String) {
        #expect(throws: GlobError.self) { try GlobPattern(pattern) }
    }

    @Test func errorNamesPatternAndReason() {
        #expect(throws: GlobError(pattern: "x[abc", "unclosed '['")) { try GlobPattern("x[abc") }
        #expect(throws: GlobError(pattern: "{a,b", "unclosed '{'")) { try GlobPattern("{a,b") }
        #expect(throws: GlobError(pattern: #"a\"#, "trailing '\\'")) { try GlobPattern(#"a\"#) }
        let error = GlobError(pattern: "[abc", "unclosed '['")
        #expect(error.description == "bad pattern '[abc': unclosed '['")
    }

    @Test func descriptionIsThePatternAsWritten() throws {
        #expect(try GlobPattern("raw/").description == "raw/")
    }
}

struct GlobFilterTests {
    private static func filter(include: [String], exclude: [String]) throws -> GlobFilter {
        GlobFilter(include: try include.map { try GlobPattern($0) }, exclude: try exclude.map { try GlobPattern($0) })
    }

    @Test func admitsEverythingWithoutPatterns() {
        #expect(GlobFilter().admits(Array("any/file.bin".utf8)))
    }

    @Test(arguments: [("a.wav", true), ("b/c.jpg", true), ("d.txt", false)])
    func admitsPathMatchingAnyInclude(path: String, expected: Bool) throws {
        let filter = try Self.filter(include: ["*.wav", "*.jpg"], exclude: [])
        #expect(filter.admits(Array(path.utf8)) == expected)
    }

    @Test(arguments: [("a.wav", true), ("tmp/a.wav", false), ("a.wav.part", false), ("x/tmp/a.wav", true)])
    func excludeWinsOverInclude(path: String, expected: Bool) throws {
        let filter = try Self.filter(include: ["*.wav", "*.part"], exclude: ["tmp/", "*.part"])
        #expect(filter.admits(Array(path.utf8)) == expected)
    }
}
