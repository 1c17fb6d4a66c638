import Foundation
import Logging
import Testing

@testable import FleetCore

/// A database of its own for one test, created on the private test cluster and dropped afterwards.
///
/// The cluster's URL comes from `FLEET_TEST_DATABASE_URL`; a missing variable fails the test with the way
/// to start one, never skips it.
struct TestDatabase {
    let url: String
    let name: String
    private let adminURL: String

    static let startHint =
        "FLEET_TEST_DATABASE_URL unset: start a private PostgreSQL with `eval \"$(scripts/pg.sh start)\"`, "
        + "or run the whole suite with scripts/test.sh"

    init() throws {
        let admin = try #require(ProcessInfo.processInfo.environment["FLEET_TEST_DATABASE_URL"], Comment(rawValue: TestDatabase.startHint))
        adminURL = admin
        name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let connection = try PGConnection(conninfo: admin)
        try connection.executeScript("CREATE DATABASE \(name)")
        var components = try #require(URLComponents(string: admin))
        components.path = "/" + name
        url = try #require(components.string)
    }

    /// Drops the database (connections to it are terminated first).
    func drop() {
        guard let connection = try? PGConnection(conninfo: adminURL) else { return }
        try? connection.executeScript("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    func connect() throws -> PGConnection { try PGConnection(conninfo: url) }

    func ledger() throws -> Ledger { try Ledger(url: url, logger: quietLogger) }
}

/// A temporary directory tree for a test, removed afterwards.
struct TemporaryTree {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-test-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    /// Writes `size` bytes at `relativePath` and sets its mtime.
    @discardableResult
    func file(_ relativePath: String, size: Int = 16, mtime: Date? = nil) throws -> URL {
        let url = root.appendingPathComponent(relativePath)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: url)
        if let mtime { try FileManager.default.setAttributes([.modificationDate: mtime], ofItemAtPath: url.path) }
        return url
    }

    func remove() { try? FileManager.default.removeItem(at: root) }
}

/// Tests assert outcomes, not log lines; this keeps their output readable.
let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
