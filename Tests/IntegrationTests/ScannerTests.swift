import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// The scanner against real directory trees and the real `find`.
struct ScannerTests {
    private func scan(
        _ root: URL,
        follow: Bool = false,
        rules: ScanRules = ScanRules()
    ) throws
        -> (files: [ScannedFile], counts: ScanCounts, problems: [ScanProblem])
    {
        var files: [ScannedFile] = []
        var problems: [ScanProblem] = []
        let counts = try Scanner(root: root.path, rules: rules, followSymlinks: follow).run(
            now: .now(),
            problems: { problems.append($0) },
            accept: { files.append($0) }
        )
        return (files, counts, problems)
    }

    @Test func oddNamesArriveByteForByte() throws {
        let tree = try TemporaryTree()
        defer { tree.remove() }
        try tree.file("line\nbreak.txt", size: 3)
        try tree.file("tab\there.txt", size: 0)
        try tree.file("space and + and %.txt", size: 5)
        let invalid: [UInt8] = Array("bad-".utf8) + [0xFF, 0xFE] + Array(".bin".utf8)
        let fd = (Array(tree.root.path.utf8) + [UInt8(ascii: "/")] + invalid + [0]).withUnsafeBufferPointer {
            $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o644) }
        }
        #expect(fd >= 0)
        close(fd)

        let result = try scan(tree.root)

        let names = Set(result.files.map(\.relativePath))
        #expect(names.contains(Array("line\nbreak.txt".utf8)))
        #expect(names.contains(Array("tab\there.txt".utf8)))
        #expect(names.contains(Array("space and + and %.txt".utf8)))
        #expect(names.contains(invalid))
        #expect(result.files.first { $0.relativePath == Array("tab\there.txt".utf8) }?.size == 0)
    }

    @Test func symbolicLinksAreSkippedUnlessFollowedAndLoopsAreReported() throws {
        let tree = try TemporaryTree()
        defer { tree.remove() }
        try tree.file("real/a.log", size: 4)
        try FileManager.default.createSymbolicLink(
            atPath: tree.root.path + "/link.log",
            withDestinationPath: "real/a.log"
        )
        try FileManager.default.createSymbolicLink(atPath: tree.root.path + "/real/loop", withDestinationPath: "..")

        let plain = try scan(tree.root)
        #expect(plain.files.map(\.relativePath) == [Array("real/a.log".utf8)])
        #expect(plain.counts.symlinksSkipped == 2)

        let followed = try scan(tree.root, follow: true)
        #expect(Set(followed.files.map(\.relativePath)) == [Array("real/a.log".utf8), Array("link.log".utf8)])
        #expect(followed.problems.contains { $0.kind == .symlinkLoop })
    }

    @Test func handlerThatThrowsEndsTheScanEvenWithFindBlockedOnAFullPipe() throws {
        struct Stop: Error {}
        let tree = try TemporaryTree()
        defer { tree.remove() }
        // Far more output than a pipe holds, so find is blocked writing when the handler gives up.
        let name = String(repeating: "n", count: 100)
        for index in 0..<3000 { try tree.file("d\(index % 10)/\(name)-\(index)", size: 0) }

        #expect(throws: Stop.self) {
            _ = try Scanner(root: tree.root.path, rules: ScanRules()).run(now: .now()) { _ in throw Stop() }
        }
    }

    @Test func missingRootIsAnError() throws {
        #expect(throws: ScanError.self) {
            _ = try Scanner(root: "/nonexistent/fleet-scan-root", rules: ScanRules()).run(now: .now()) { _ in }
        }
    }
}
