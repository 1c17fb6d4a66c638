import FleetLedger
import Foundation

/// A vehicle's login role on the test cluster, added through the ledger as `master device add` does, with a name
/// no other test uses (roles are cluster-wide); `remove()` drops it again.
package struct TestDevice {
    package let name: String
    /// The test database's URL as this role.
    package let url: String
    private let database: TestDatabase

    package init(_ database: TestDatabase, projects: [String], certificate: Bool = false) throws {
        self.database = database
        name = "rig-" + UUID().uuidString.prefix(8).lowercased()
        url = try database.url(user: name)
        try database.ledger().addDeviceLogin(
            device: name,
            projects: projects,
            password: certificate ? nil : UUID().uuidString
        )
    }

    package func ledger() throws -> Ledger { try Ledger(url: url, logger: quietLogger) }

    /// Ends the role's connections (one in a transaction may hold a temporary table the role owns), then removes it.
    package func remove() {
        try? database.connect().executeScript(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = '\(name)'"
        )
        _ = try? database.ledger().removeDeviceLogin(device: name)
    }
}
