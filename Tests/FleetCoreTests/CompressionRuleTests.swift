import FleetSystem
import Testing

@testable import FleetCore

/// Which files of a source `compress` takes, and the keys they get.
struct CompressionRuleTests {
    static func walked(_ path: String, key: String) -> WalkedFile {
        WalkedFile(
            source: "logs",
            file: ScannedFile(
                relativePath: Array(path.utf8),
                size: 10,
                mtime: Timestamp(seconds: 1, nanoseconds: 0),
                readable: true
            ),
            fullPath: Array("/data/\(path)".utf8),
            displayPath: "/data/\(path)",
            placement: .success(Placement(bucket: "b", key: key))
        )
    }

    static func key(_ file: WalkedFile) -> String? { try? file.placement.get().key }

    @Test func filesTheIncludeMatchesGetZstAndTheOthersStayAsTheyAre() throws {
        let source = SourceSettings(
            path: "/data",
            compress: CompressSettings(codec: "zstd", level: 7, include: ["*.log", "text/**/*.txt"])
        )
        let rule = try #require(CompressionRule(source))
        var log = Self.walked("ros/run1/rosout.log", key: "p/ros/run1/rosout.log")
        log.compress(by: rule)
        #expect(log.compression == Compression(level: 7))
        #expect(Self.key(log) == "p/ros/run1/rosout.log.zst")

        var text = Self.walked("text/a/b.txt", key: "p/text/a/b.txt")
        text.compress(by: rule)
        #expect(Self.key(text) == "p/text/a/b.txt.zst")

        for path in ["camera/frame.jpg", "b.txt", "rosout.log.1"] {
            var other = Self.walked(path, key: "p/\(path)")
            other.compress(by: rule)
            #expect(other.compression == nil)
            #expect(Self.key(other) == "p/\(path)", "\(path) went up under another key")
        }
    }

    @Test func withoutIncludeEveryFileIsCompressedAtTheDefaultLevel() throws {
        let rule = try #require(CompressionRule(SourceSettings(path: "/d", compress: CompressSettings(codec: "zstd"))))
        var file = Self.walked("x/y.bin", key: "y.bin")
        file.compress(by: rule)
        #expect(file.compression == Compression(level: Zstd.defaultLevel))
        #expect(CompressionRule(SourceSettings(path: "/d")) == nil)
    }

    @Test func aKeyTheSuffixMakesTooLongIsAnInvalidKey() throws {
        let rule = try #require(CompressionRule(SourceSettings(path: "/d", compress: CompressSettings(codec: "zstd"))))
        var file = Self.walked("a.log", key: String(repeating: "k", count: KeyMapper.maximumKeyBytes - 2))
        file.compress(by: rule)
        #expect(throws: KeyError.self) { try file.placement.get() }
    }

    @Test func theConfigurationRefusesAnotherCodecALevelLibzstdLacksAndABadGlob() {
        var config = FleetConfig(
            project: ProjectSettings(name: "p"),
            s3: S3Settings(bucket: "fleet-data"),
            source: SourceSettings(path: "/d", compress: CompressSettings(codec: "gzip", level: 99, include: ["[x"]))
        )
        #expect(
            config.problems().compactMap(\.keyPath).sorted()
                == ["source.compress.codec", "source.compress.include[0]", "source.compress.level"]
        )
        config.source?.compress = CompressSettings(codec: "zstd", level: -5, include: ["*.log"])
        #expect(config.problems().isEmpty)
    }
}
