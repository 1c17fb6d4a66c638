import FleetCore
import FleetLedger
import FleetSystem
import Foundation
import Logging

/// A database of its own for one test, created on the private test cluster and dropped afterwards.
///
/// The cluster's URL comes from `FLEET_TEST_DATABASE_URL`; a missing variable fails the test with the way
/// to start one, never skips it.
///
/// With `FLEET_TEST_VIA_PGBOUNCER=1` (scripts/test.sh's second, filtered run) `url`, which the tools and the
/// test's own checks use, goes through PgBouncer in transaction pooling (`FLEET_TEST_PGBOUNCER_URL`), while
/// creating and dropping the database stays on the server's own URL: a transaction pooler cannot run
/// `CREATE DATABASE`.
package struct TestDatabase {
    package let url: String
    package let name: String
    private let adminURL: String

    package static let startHint =
        "FLEET_TEST_DATABASE_URL unset: start a private PostgreSQL with `eval \"$(scripts/pg.sh start)\"`, "
        + "or run the whole suite with scripts/test.sh"

    package static let poolerHint =
        "FLEET_TEST_PGBOUNCER_URL unset: start PgBouncer in front of the test cluster with "
        + "`eval \"$(scripts/pgbouncer.sh start /tmp/fleet-pgbouncer \"$FLEET_TEST_DATABASE_URL\")\"` "
        + "(apt-get install pgbouncer), or run the whole suite with scripts/test.sh"

    /// Whether this run sends the tools through PgBouncer (`FLEET_TEST_VIA_PGBOUNCER=1`).
    package static var viaPooler: Bool { ProcessInfo.processInfo.environment["FLEET_TEST_VIA_PGBOUNCER"] == "1" }

    /// PgBouncer's URL (transaction pooling, in front of the test cluster); fails with the way to start it.
    package static func poolerURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["FLEET_TEST_PGBOUNCER_URL"], !url.isEmpty else {
            throw TestEnvironmentError(description: poolerHint)
        }
        return url
    }

    /// - Parameter tablespace: Where the database's tables live (the default tablespace when nil).
    package init(tablespace: String? = nil) throws {
        guard let admin = ProcessInfo.processInfo.environment["FLEET_TEST_DATABASE_URL"] else {
            throw TestEnvironmentError(description: TestDatabase.startHint)
        }
        adminURL = admin
        // The tests' own connections, apart from the tools' (`fleet-upload` …) in pg_stat_activity and the log.
        PGConnection.applicationName = "fleet-tests"
        name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let connection = try PGConnection(conninfo: admin)
        try connection.executeScript("CREATE DATABASE \(name)" + (tablespace.map { " TABLESPACE \($0)" } ?? ""))
        let base = TestDatabase.viaPooler ? try TestDatabase.poolerURL() : admin
        guard var components = URLComponents(string: base) else {
            throw TestEnvironmentError(description: "not a URL: \(base)")
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

    /// The same database through PgBouncer, whichever way `url` goes.
    package func poolerURL() throws -> String {
        guard var components = URLComponents(string: try TestDatabase.poolerURL()) else {
            throw TestEnvironmentError(description: "FLEET_TEST_PGBOUNCER_URL is not a URL")
        }
        components.path = "/" + name
        return components.string!
    }

    /// The same database on the server's own URL, never through PgBouncer (for `pg_stat_activity` counts).
    package func directURL() throws -> String {
        guard var components = URLComponents(string: adminURL) else {
            throw TestEnvironmentError(description: "FLEET_TEST_DATABASE_URL is not a URL: \(adminURL)")
        }
        components.path = "/" + name
        return components.string!
    }

    /// The database's URL for another role, on the server's own URL (the test cluster trusts every role on
    /// loopback).
    package func url(user: String) throws -> String {
        var components = URLComponents(string: try directURL())!
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

    /// A fresh directory in the temporary directory, or in `parent` (`/var/tmp` for a directory below one the
    /// configuration protects from deletion).
    package init(under parent: URL = FileManager.default.temporaryDirectory) throws {
        root = parent.appendingPathComponent("fleet-test-" + UUID().uuidString)
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
