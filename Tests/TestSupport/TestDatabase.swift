import FleetCore
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// A database of its own for one test, created on the private test cluster and dropped afterwards.
///
/// The cluster's URL comes from `FLEET_TEST_DATABASE_URL`; a missing variable fails the test with the way
/// to start one, never skips it.
package struct TestDatabase {
    package let url: String
    package let name: String
    private let adminURL: String

    package static let startHint =
        "FLEET_TEST_DATABASE_URL unset: start a private PostgreSQL with `eval \"$(scripts/pg.sh start)\"`, "
        + "or run the whole suite with scripts/test.sh"

    /// - Parameter tablespace: Where the database's tables live (the default tablespace when nil).
    package init(tablespace: String? = nil) throws {
        guard let admin = ProcessInfo.processInfo.environment["FLEET_TEST_DATABASE_URL"] else {
            throw TestEnvironmentError(description: TestDatabase.startHint)
        }
        adminURL = admin
        name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let connection = try PGConnection(conninfo: admin)
        try connection.executeScript("CREATE DATABASE \(name)" + (tablespace.map { " TABLESPACE \($0)" } ?? ""))
        guard var components = URLComponents(string: admin) else {
            throw TestEnvironmentError(description: "FLEET_TEST_DATABASE_URL is not a URL: \(admin)")
        }
        components.path = "/" + name
        url = components.string!
    }

    /// Drops the database (connections to it are terminated first).
    package func drop() {
        guard let connection = try? PGConnection(conninfo: adminURL) else { return }
        try? connection.executeScript("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    package func connect() throws -> PGConnection { try PGConnection(conninfo: url) }

    /// The database's URL for another role (the test cluster trusts every role on loopback).
    package func url(user: String) -> String {
        var components = URLComponents(string: url)!
        components.user = user
        return components.string!
    }

    package func ledger() throws -> Ledger { try Ledger(url: url, logger: quietLogger) }

    /// Makes the ledger refuse every `operation` (`INSERT`, `UPDATE`, `DELETE`) on `table` with an error, as
    /// a ledger that cannot be written does; `allow` lifts it. The schema must exist (migrated).
    package func refuse(_ operation: String, on table: String) throws {
        try connect().executeScript(
            """
            CREATE FUNCTION refuse_\(table)() RETURNS trigger LANGUAGE plpgsql AS
                $$ BEGIN RAISE EXCEPTION '\(table) refuses \(operation) in this test'; END $$;
            CREATE TRIGGER refuse_\(table) BEFORE \(operation) ON \(table)
                FOR EACH ROW EXECUTE FUNCTION refuse_\(table)();
            """
        )
    }

    /// Lifts `refuse(_:on:)`.
    package func allow(on table: String) throws {
        try connect().executeScript("DROP TRIGGER refuse_\(table) ON \(table)")
    }
}

/// A temporary directory tree for a test, removed afterwards.
package struct TemporaryTree {
    package let root: URL

    package init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-test-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    /// Writes `size` bytes at `relativePath` and sets its mtime.
    @discardableResult
    package func file(_ relativePath: String, size: Int = 16, mtime: Date? = nil) throws -> URL {
        let url = root.appendingPathComponent(relativePath)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: url)
        if let mtime { try FileManager.default.setAttributes([.modificationDate: mtime], ofItemAtPath: url.path) }
        return url
    }

    package func remove() { try? FileManager.default.removeItem(at: root) }
}

/// Tests assert outcomes, not log lines; this keeps their output readable.
package let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// The test environment is missing something; the message says how to provide it.
package struct TestEnvironmentError: Error, CustomStringConvertible {
    package var description: String
    package init(description: String) { self.description = description }
}
