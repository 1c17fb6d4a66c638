import Foundation
import Glibc
import InMemoryLogging
import Logging
import Testing

@testable import FleetSystem

struct FileWatcherTests {
    @Test func fileCreatedInARootIsReported() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        let watcher = try tree.watcher()

        try tree.write("terminal.log")

        #expect(watcher.poll(timeout: 1) == [.changed(tree.path("terminal.log"))])
    }

    @Test func writesToAnExistingFileAreReportedOncePerPoll() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        try tree.write("syslog")
        let watcher = try tree.watcher()

        for _ in 0..<10 { try tree.write("syslog", "line\n") }
        #expect(watcher.poll(timeout: 1) == [.changed(tree.path("syslog"))])

        try tree.write("syslog", "more\n")
        #expect(watcher.poll(timeout: 1) == [.changed(tree.path("syslog"))])
    }

    @Test func filesInANewNestedSubdirectoryAreReportedEvenIfWrittenBeforeItsWatch() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        let watcher = try tree.watcher()
        #expect(watcher.watchedDirectoryCount == 1)

        // All of this happens before the watcher sees the first IN_CREATE, so only listing finds the files.
        try tree.makeDirectories("ros/run1/bags")
        try tree.write("ros/run1/bags/a.bag")
        try tree.write("ros/run1/rosout.log")
        try tree.write("ros/top.log")

        let events = watcher.poll(timeout: 1)
        let expected: [FileWatcher.Event] = [
            .changed(tree.path("ros/run1/bags/a.bag")), .changed(tree.path("ros/run1/rosout.log")),
            .changed(tree.path("ros/top.log")),
        ]
        #expect(sameEvents(events, expected), "directories themselves are not reported: \(events)")
        #expect(watcher.watchedDirectoryCount == 4)

        // The new directories are watched from now on.
        try tree.write("ros/run1/bags/b.bag")
        #expect(watcher.poll(timeout: 1) == [.changed(tree.path("ros/run1/bags/b.bag"))])
    }

    @Test func aDirectoryMovedInFromOutsideReportsItsFiles() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        let outside = try ScratchTree()
        defer { outside.remove() }
        try outside.makeDirectories("session/nested")
        try outside.write("session/one.log")
        try outside.write("session/nested/two.log")
        let watcher = try tree.watcher()

        try move(outside.path("session"), tree.path("session"))

        let events = watcher.poll(timeout: 1)
        let expected: [FileWatcher.Event] = [
            .changed(tree.path("session/one.log")), .changed(tree.path("session/nested/two.log")),
        ]
        #expect(sameEvents(events, expected), "\(events)")
        #expect(watcher.watchedDirectoryCount == 3)
    }

    @Test func directoryRenamedWithinTheTreeIsWatchedUnderItsNewName() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        try tree.makeDirectories("run1/bags")
        try tree.write("run1/bags/a.bag")
        let watcher = try tree.watcher()

        try move(tree.path("run1"), tree.path("run1-done"))
        #expect(watcher.poll(timeout: 1) == [.changed(tree.path("run1-done/bags/a.bag"))])
        #expect(watcher.watchedDirectoryCount == 3)

        try tree.write("run1-done/bags/b.bag")
        #expect(watcher.poll(timeout: 1) == [.changed(tree.path("run1-done/bags/b.bag"))])
    }

    @Test func directoryMovedOutIsNoLongerWatched() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        let outside = try ScratchTree()
        defer { outside.remove() }
        try tree.makeDirectories("ros2/logs")
        let watcher = try tree.watcher()
        #expect(watcher.watchedDirectoryCount == 3)

        try move(tree.path("ros2"), outside.path("ros2"))
        #expect(watcher.poll(timeout: 0.05) == [])
        #expect(watcher.watchedDirectoryCount == 1)

        try outside.write("ros2/logs/late.log")
        #expect(watcher.poll(timeout: 0.05) == [])
    }

    @Test func deletionIsReportedAsRemoved() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        try tree.write("old.log")
        let watcher = try tree.watcher()

        try tree.unlink("old.log")

        #expect(watcher.poll(timeout: 1) == [.removed(tree.path("old.log"))])
    }

    @Test func renameWithinTheTreeGivesRemovedThenChanged() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        try tree.makeDirectories("archive")
        try tree.write("current.log")
        let watcher = try tree.watcher()

        try move(tree.path("current.log"), tree.path("archive/current.log.1"))

        #expect(
            watcher.poll(timeout: 1) == [
                .removed(tree.path("current.log")), .changed(tree.path("archive/current.log.1")),
            ]
        )
    }

    @Test func manyEventsAreDeduplicatedInOrderOfFirstAppearance() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        try tree.write("busy.log")
        let watcher = try tree.watcher()

        for _ in 0..<100 { try tree.write("busy.log", "x") }
        for index in 0..<20 {
            for _ in 0..<5 { try tree.write("file-\(index).log", "y") }
        }
        try tree.write("busy.log", "z")

        let expected =
            [FileWatcher.Event.changed(tree.path("busy.log"))]
            + (0..<20).map { FileWatcher.Event.changed(tree.path("file-\($0).log")) }
        #expect(watcher.poll(timeout: 1) == expected)
    }

    @Test func fileDeletedAndCreatedAgainInOnePollIsReportedAsChanged() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        try tree.write("rotating.log")
        let watcher = try tree.watcher()

        try tree.unlink("rotating.log")
        try tree.write("rotating.log")

        #expect(watcher.poll(timeout: 1) == [.changed(tree.path("rotating.log"))])
    }

    @Test func pollWithNoEventsReturnsEmptyAfterTheTimeout() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        let watcher = try tree.watcher()

        let started = ContinuousClock.now
        let events = watcher.poll(timeout: 0.05)

        #expect(events.isEmpty)
        #expect(ContinuousClock.now - started < .seconds(1))
    }

    @Test func nonUTF8FileNameBytesSurvive() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        let watcher = try tree.watcher()
        let name: [UInt8] = [0x72, 0x75, 0x6E, 0xFF, 0xFE, 0x2E, 0x6C, 0x6F, 0x67]  // "run\xFF\xFE.log"
        let path = tree.path(bytes: name)

        let descriptor = path.withCPath { open($0, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644) }
        try #require(descriptor >= 0)
        close(descriptor)

        #expect(watcher.poll(timeout: 1) == [.changed(path)])
    }

    @Test func aRootThatDoesNotExistThrowsAClearError() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        let missing = tree.root + "/not-there"

        let error = #expect(throws: WatchError.self) {
            try FileWatcher(roots: [missing], logger: testLogger)
        }

        #expect(error?.kind == .noSuchDirectory)
        #expect(error?.description == "cannot watch \(missing): No such file or directory")
    }

    @Test func aRootThatIsAFileThrows() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        try tree.write("plain")

        let error = #expect(throws: WatchError.self) {
            try FileWatcher(roots: [tree.root + "/plain"], logger: testLogger)
        }

        #expect(error?.kind == .notADirectory)
    }

    @Test func removingARootAsksForARescanAndARecreatedRootIsWatchedAgain() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        try tree.makeDirectories("source/sub")
        let watcher = try FileWatcher(roots: [tree.root + "/source/"], logger: testLogger)
        #expect(watcher.watchedDirectoryCount == 2)

        try tree.removeContents(of: "source")
        let events = watcher.poll(timeout: 1)
        #expect(events.contains(where: isRescan), "\(events)")
        #expect(watcher.watchedDirectoryCount == 0)

        try tree.makeDirectories("source")
        try tree.write("source/back.log")
        #expect(watcher.poll(timeout: 1) == [.changed(tree.path("source/back.log"))])
        #expect(watcher.watchedDirectoryCount == 1)
    }

    @Test func symbolicLinksToDirectoriesAreFollowedOnlyWhenAsked() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        let outside = try ScratchTree()
        defer { outside.remove() }
        try tree.makeDirectories("root")
        try tree.symlink(outside.root, at: "root/elsewhere")

        let plain = try FileWatcher(roots: [tree.root + "/root"], logger: testLogger)
        let following = try FileWatcher(roots: [tree.root + "/root"], followSymlinks: true, logger: testLogger)
        #expect(plain.watchedDirectoryCount == 1)
        #expect(following.watchedDirectoryCount == 2)

        try outside.write("far.log")
        #expect(plain.poll(timeout: 0) == [])
        #expect(following.poll(timeout: 1) == [.changed(tree.path("root/elsewhere/far.log"))])
    }

    @Test func aSymbolicLinkLoopIsWatchedOnceWhenFollowing() throws {
        let tree = try ScratchTree()
        defer { tree.remove() }
        try tree.makeDirectories("a/b")
        try tree.symlink("..", at: "a/b/up")
        try tree.symlink(tree.root, at: "a/top")

        let watcher = try FileWatcher(roots: [tree.root], followSymlinks: true, logger: testLogger)

        #expect(watcher.watchedDirectoryCount == 3)
    }
}

/// Log entries stay in memory; nothing is bootstrapped globally.
private let testLogger = Logger(label: "fleet.test.watch", factory: { _ in InMemoryLogHandler() })

/// The same events in any order (the order of files in a listed directory is the file system's).
private func sameEvents(_ events: [FileWatcher.Event], _ expected: [FileWatcher.Event]) -> Bool {
    events.count == expected.count && expected.allSatisfy(events.contains)
}

private func isRescan(_ event: FileWatcher.Event) -> Bool {
    if case .rescanNeeded = event { return true }
    return false
}

/// A directory under the temporary directory for one test; `remove()` deletes it with everything in it.
private struct ScratchTree {
    let root: String

    init() throws {
        var base = NSTemporaryDirectory()
        while base.count > 1, base.hasSuffix("/") { base.removeLast() }
        var template = Array((base + "/fleet-watch-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw ScratchError("mkdtemp: \(String(cString: strerror(errno)))") }
        root = String(cString: made)
    }

    func path(_ relative: String) -> [UInt8] { Array((root + "/" + relative).utf8) }

    func path(bytes relative: [UInt8]) -> [UInt8] { Array(root.utf8) + [UInt8(ascii: "/")] + relative }

    func watcher() throws -> FileWatcher { try FileWatcher(roots: [root], logger: testLogger) }

    /// Appends `text` to the file, creating it first if needed.
    func write(_ relative: String, _ text: String = "") throws {
        let descriptor = path(relative).withCPath { open($0, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
        guard descriptor >= 0 else { throw ScratchError("open \(relative): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ Glibc.write(descriptor, $0.baseAddress, $0.count) }) == bytes.count else {
            throw ScratchError("write \(relative): \(String(cString: strerror(errno)))")
        }
    }

    func makeDirectories(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: root + "/" + relative, withIntermediateDirectories: true)
    }

    func symlink(_ target: String, at relative: String) throws {
        guard Glibc.symlink(target, root + "/" + relative) == 0 else {
            throw ScratchError("symlink \(relative): \(String(cString: strerror(errno)))")
        }
    }

    func unlink(_ relative: String) throws {
        guard path(relative).withCPath({ Glibc.unlink($0) }) == 0 else {
            throw ScratchError("unlink \(relative): \(String(cString: strerror(errno)))")
        }
    }

    /// Deletes `relative` and everything below it.
    func removeContents(of relative: String) throws {
        guard Self.removeTree(path(relative)) else { throw ScratchError("cannot remove \(relative)") }
    }

    func remove() { _ = Self.removeTree(Array(root.utf8)) }

    /// `rm -rf` on path bytes (names need not be UTF-8); symbolic links are removed, not followed.
    private static func removeTree(_ path: [UInt8]) -> Bool {
        var info = stat()
        guard path.withCPath({ lstat($0, &info) }) == 0 else { return false }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { return path.withCPath { Glibc.unlink($0) } == 0 }
        if let stream = path.withCPath({ opendir($0) }) {
            var names: [[UInt8]] = []
            while let entry = readdir(stream) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in Array(bytes.prefix { $0 != 0 }) }
                if name != [46], name != [46, 46] { names.append(name) }
            }
            closedir(stream)
            for name in names { _ = removeTree(path + [47] + name) }
        }
        return path.withCPath { rmdir($0) } == 0
    }
}

private struct ScratchError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}

/// `rename(2)` on two paths given as bytes.
private func move(_ from: [UInt8], _ to: [UInt8]) throws {
    let result = from.withCPath { source in to.withCPath { Glibc.rename(source, $0) } }
    guard result == 0 else { throw ScratchError("rename: \(String(cString: strerror(errno)))") }
}
