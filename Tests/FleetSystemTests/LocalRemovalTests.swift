import Foundation
import Glibc
import Testing

@testable import FleetSystem

/// The one way a local file is deleted, by `upload.delete_after_upload` and every agent policy: checked
/// against the file as it was uploaded, never through a symbolic link.
struct LocalRemovalTests {
    /// A directory of its own under /tmp, removed at the end.
    final class Tree {
        let root: String
        init() throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("removal-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        @discardableResult
        func write(_ relative: String, _ text: String) throws -> String {
            let path = root + "/" + relative
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent,
                withIntermediateDirectories: true
            )
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }

        /// What the upload would have read: `fstat` of the file.
        func identity(_ path: String) throws -> FileIdentity { try LocalFile(path: path).status().identity }
    }

    @Test func removesTheFileThatWasUploaded() throws {
        let tree = try Tree()
        let path = try tree.write("source/logs/a.log", "uploaded")
        let outcome = LocalRemoval.removeRegularFile(
            Array(path.utf8),
            root: Array((tree.root + "/source").utf8),
            expected: try tree.identity(path)
        )
        #expect(outcome == .removed)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func keepsAFileReplacedByAnotherOfTheSameSizeAndMtime() throws {
        let tree = try Tree()
        let path = try tree.write("source/a.log", "uploaded")
        let uploaded = try tree.identity(path)
        // Another file of the same length, given the same mtime to the nanosecond, renamed over the first.
        let other = try tree.write("source/.a.log.new", "replaced")
        let touch = Process()
        touch.executableURL = URL(fileURLWithPath: "/usr/bin/touch")
        touch.arguments = ["-r", path, other]
        try touch.run()
        touch.waitUntilExit()
        #expect(rename(other, path) == 0)
        let now = try tree.identity(path)
        #expect(now.size == uploaded.size && now.mtime == uploaded.mtime && now.inode != uploaded.inode)

        let outcome = LocalRemoval.removeRegularFile(
            Array(path.utf8),
            root: Array((tree.root + "/source").utf8),
            expected: uploaded
        )

        #expect(outcome == .changed)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "replaced")
    }

    @Test func neverDeletesThroughADirectorySwappedForALinkOutOfTheSource() throws {
        let tree = try Tree()
        let inside = try tree.write("source/run/a.log", "uploaded")
        let uploaded = try tree.identity(inside)
        // Outside the source: a file at the same relative name, then the directory swapped for a link to it.
        let outside = try tree.write("elsewhere/a.log", "precious")
        try FileManager.default.removeItem(atPath: tree.root + "/source/run")
        try FileManager.default.createSymbolicLink(
            atPath: tree.root + "/source/run",
            withDestinationPath: tree.root + "/elsewhere"
        )
        let reachedThrough = try tree.identity(inside)

        for expected in [uploaded, FileIdentity(size: reachedThrough.size, mtime: reachedThrough.mtime)] {
            let outcome = LocalRemoval.removeRegularFile(
                Array(inside.utf8),
                root: Array((tree.root + "/source").utf8),
                expected: expected
            )
            #expect(outcome == .linkOnPath)
        }
        #expect(try String(contentsOfFile: outside, encoding: .utf8) == "precious")
    }

    @Test func refusesAPathOutsideItsSourceDirectory() throws {
        let tree = try Tree()
        let path = try tree.write("other/a.log", "x")
        let outcome = LocalRemoval.removeRegularFile(
            Array(path.utf8),
            root: Array((tree.root + "/source").utf8),
            expected: try tree.identity(path)
        )
        #expect(outcome == .failed("not inside its source directory"))
        #expect(FileManager.default.fileExists(atPath: path))
    }

    @Test func systemCallErrorsNameTheCall() throws {
        let error = try #require(throws: SystemCallError.self) {
            try Syscall.call("open") { open("/nonexistent/fleet/x", O_RDONLY) }
        }
        #expect(error.code == ENOENT)
        #expect(error.description == "open: No such file or directory")
    }
}
