import Foundation
import Testing

@testable import FleetSystem

struct DiskUsageTests {
    private static func expectPlausible(_ usage: DiskUsage, _ path: String) {
        #expect(usage.totalBytes > 0, "\(path): \(usage)")
        #expect(usage.usedBytes >= 0 && usage.usedBytes <= usage.totalBytes, "\(path): \(usage)")
        #expect(usage.availableBytes >= 0 && usage.availableBytes <= usage.totalBytes, "\(path): \(usage)")
        #expect(usage.usedBytes + usage.availableBytes <= usage.totalBytes, "\(path): \(usage)")
        #expect(usage.usedPercent >= 0 && usage.usedPercent <= 100, "\(path): \(usage)")
    }

    @Test func measuresTheRootFileSystem() throws {
        Self.expectPlausible(try DiskUsage.of(path: "/"), "/")
    }

    @Test func pathsOnOneFileSystemShareItsID() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-disk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("a.log")
        try Data("x".utf8).write(to: file)

        let folder = try DiskUsage.of(path: directory.path)
        Self.expectPlausible(folder, directory.path)
        let inside = try DiskUsage.of(path: file.path)
        #expect(inside.fileSystemID == folder.fileSystemID)
        #expect(inside.totalBytes == folder.totalBytes)
    }

    @Test func missingPathThrowsNamingIt() {
        let path = "/nonexistent-\(UUID().uuidString)/logs"
        #expect {
            _ = try DiskUsage.of(path: path)
        } throws: { error in
            guard let error = error as? DiskUsageError else { return false }
            return error.path == path && error.code == ENOENT
                && error.description == "disk usage of \(path): No such file or directory"
        }
    }

    @Test(arguments: [
        (100, 30, 60, 100.0 / 3),
        (100, 0, 100, 0),
        (100, 95, 0, 100),  // only the root reserve is left
        (1000, 900, 100, 90),
        (0, 0, 0, 0),
    ])
    func usedPercentCountsLikeDf(total: Int64, used: Int64, available: Int64, percent: Double) {
        let usage = DiskUsage(totalBytes: total, usedBytes: used, availableBytes: available, fileSystemID: 1)
        #expect(abs(usage.usedPercent - percent) < 1e-9)
    }
}
