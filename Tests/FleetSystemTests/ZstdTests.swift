import Foundation
import Testing

@testable import FleetSystem

/// The streaming compressor and decompressor, and the compressed copy an upload sends.
struct ZstdTests {
    /// Log-like text: lines that repeat with small changes, as real logs do.
    static func logText(lines: Int) -> [UInt8] {
        var text = ""
        for index in 0..<lines {
            text += "[INFO] [1733500000.\(String(index * 7919 % 1_000_000_000).leftPadded(9))] [/planning/node]: "
            text += "step \(index) took \(index % 17) ms, queue \(index % 5)\n"
        }
        return Array(text.utf8)
    }

    /// `input` compressed by one compressor fed `chunk` bytes at a time.
    static func compressInChunks(_ input: [UInt8], chunk: Int, level: Int = 3) throws -> [UInt8] {
        let compressor = try ZstdCompressor(level: level, pledgedSize: Int64(input.count))
        var out: [UInt8] = []
        try input.withUnsafeBytes { all in
            var offset = 0
            repeat {
                let end = min(all.count, offset + chunk)
                try compressor.compress(UnsafeRawBufferPointer(rebasing: all[offset..<end]), last: end == all.count) {
                    out.append(contentsOf: $0)
                }
                offset = end
            } while offset < all.count
        }
        return out
    }

    @Test(arguments: [1, 7, 4096, 131_073, 1 << 22])
    func theOutputDoesNotDependOnHowTheInputIsCut(chunk: Int) throws {
        let input = Self.logText(lines: 20_000)
        let whole = try Zstd.compress(input, level: 3)
        #expect(try Self.compressInChunks(input, chunk: chunk) == whole)
        #expect(try Zstd.decompress(whole) == input)
    }

    @Test func theSameInputCompressesToTheSameBytesEveryTime() throws {
        let input = Self.logText(lines: 50_000)
        let first = try Zstd.compress(input, level: 3)
        let second = try Zstd.compress(input, level: 3)
        #expect(first == second)
        #expect(first.count * 5 < input.count, "log text compressed to \(first.count) of \(input.count) bytes")
        #expect(try Zstd.compress(input, level: 9) != first, "the level changes the bytes")
    }

    @Test func anEmptyInputIsOneFrameThatDecompressesToNothing() throws {
        let frame = try Zstd.compress([], level: 3)
        #expect(!frame.isEmpty)
        #expect(try Zstd.decompress(frame) == [])
    }

    @Test func aTruncatedFrameIsAnErrorNotAShorterFile() throws {
        let frame = try Zstd.compress(Self.logText(lines: 1000), level: 3)
        #expect(throws: ZstdError.self) { try Zstd.decompress(Array(frame.dropLast(10))) }
        #expect(throws: ZstdError.self) { try Zstd.decompress(Array("not zstd".utf8)) }
    }

    @Test func aLevelLibzstdDoesNotHaveIsRefused() {
        #expect(Zstd.levels.contains(3) && Zstd.levels.contains(-5) && Zstd.levels.contains(22))
        #expect(throws: ZstdError.self) { try ZstdCompressor(level: Zstd.levels.upperBound + 1) }
    }

    /// A copy larger than one read (the read size is 1 MiB) and an empty one: the bytes, the original's checksum,
    /// and nothing left in the temporary directory, not even while the copy is open.
    @Test(arguments: [(1 << 20) * 5 / 2, 0])
    func aCompressedCopyHoldsTheFileCompressedAndLeavesNothingOnDisk(size: Int) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zstd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let log = Self.logText(lines: size / 60 + 1)
        let input = Array(log.prefix(size))
        let path = directory.appendingPathComponent("app.log")
        try Data(input).write(to: path)
        let spool = directory.appendingPathComponent("spool")
        try FileManager.default.createDirectory(at: spool, withIntermediateDirectories: true)

        let original = try LocalFile(path: path.path)
        let copy = try CompressedCopy(of: original, level: 3, in: spool.path)

        #expect(try FileManager.default.contentsOfDirectory(atPath: spool.path).isEmpty)
        #expect(copy.original.size == Int64(input.count))
        #expect(copy.originalSHA256 == SHA256.digest(input))
        #expect(try copy.file.status().size == copy.size)
        let sent = try copy.file.contents(length: copy.size)
        #expect(sent == (try Zstd.compress(input, level: 3)), "the copy is the one-shot compression of the file")
        #expect(try Zstd.decompress(sent) == input)
    }

    @Test func aStopEndsTheCopyBeforeItsEnd() throws {
        let original = try LocalFile(path: "/etc/hostname")
        #expect {
            try CompressedCopy(of: original, level: 3) { true }
        } throws: { error in
            (error as? LocalFileError)?.kind == .stopped
        }
    }

    @Test func aCopyInADirectoryThatCannotTakeItNamesTheDirectory() throws {
        let original = try LocalFile(path: "/etc/hostname")
        #expect {
            try CompressedCopy(of: original, level: 3, in: "/nonexistent-spool")
        } throws: { error in
            (error as? LocalFileError)?.message.contains("/nonexistent-spool") == true
        }
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
