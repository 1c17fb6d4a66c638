import FleetSystem
import Foundation

/// How a device's login role proves who it is.
package enum DeviceAuthentication: String, Sendable, Equatable, PGDecodable {
    /// A password (stored by the server as a SCRAM verifier; the plain text is shown once).
    case password
    /// A client certificate whose common name is the role's name (`hostssl … cert` in pg_hba.conf).
    case certificate
}

/// The device the connected role logs in as, when it is a device's login.
package struct DeviceIdentity: Sendable, Equatable {
    package var role: String
    package var device: String
    /// The projects it may use, by name.
    package var projects: [String]
}

/// A vehicle's login role, as `master device list` shows it.
package struct DeviceLogin: Sendable, Equatable {
    package var device: String
    package var role: String
    package var authentication: DeviceAuthentication
    package var projects: [String]
    package var createdAt: Timestamp
    package var lastHeartbeatAt: Timestamp?
}

extension Ledger {
    /// The group roles the ledger's migration creates: `fleet_admin`, `fleet_device`, `fleet_reader`.
    package static let groupRoles = ["fleet_admin", "fleet_device", "fleet_reader"]

    /// The device whose login role this connection uses; nil for any other role.
    package func deviceIdentity() throws -> DeviceIdentity? {
        let rows = try connection.execute(
            """
            SELECT l.role_name, d.name, coalesce(json_agg(g.project_name ORDER BY g.project_name)
                                                 FILTER (WHERE g.project_name IS NOT NULL), '[]')::text
            FROM device_logins l JOIN devices d ON d.id = l.device_id
            LEFT JOIN device_projects g ON g.role_name = l.role_name
            WHERE l.role_name = current_user
            GROUP BY l.role_name, d.name
            """
        )
        guard rows.rowCount == 1 else { return nil }
        return DeviceIdentity(
            role: try rows.decode(String.self, 0, 0, in: "device_logins"),
            device: try rows.decode(String.self, 0, 1, in: "devices"),
            projects: try names(rows, 0, 2)
        )
    }

    /// Creates a login role for one vehicle, a member of `fleet_device`, named after the device; records which
    /// device it is (creating the device's row if it has none) and which projects it may use. One transaction:
    /// a refusal leaves neither role nor rows.
    ///
    /// - Parameters:
    ///   - password: The role's password, or nil for a role that logs in with a client certificate only. Only
    ///     its SCRAM verifier (made by libpq here) reaches the server, so no statement log holds it.
    /// - Throws: `ConfigError` when a role of that name exists in the cluster or the device has a login;
    ///   `LedgerError` when the connected role may not create roles.
    package func addDeviceLogin(device: String, projects: [String], password: String?) throws {
        let verifier = try password.map { try connection.encryptPassword($0, user: device) }
        try connection.transaction {
            let taken = try connection.execute("SELECT 1 FROM pg_roles WHERE rolname = \(device)")
            guard taken.rowCount == 0 else {
                throw ConfigError(
                    keyPath: nil,
                    "a role named '\(device)' exists already in this PostgreSQL cluster (\(location)); "
                        + "remove that device's login first, or drop the role"
                )
            }
            // JIT off for the role: the policies' subplans keep its plans from going parallel and raise their
            // cost over jit_above_cost, and compiling then took longer than the query (a session's totals over
            // 100,000 rows: 1.5 s with JIT, 0.17 s without). A role setting, not a session's: it holds behind a
            // pooler.
            let create = try connection.execute(
                """
                SELECT format('CREATE ROLE %I LOGIN IN ROLE fleet_device', \(device)::text)
                       || coalesce(format(' PASSWORD %L', \(verifier)::text), '')
                       || format('; ALTER ROLE %I SET jit = off', \(device)::text)
                """
            )
            try connection.executeScript(try create.decode(String.self, 0, 0, in: "pg_roles"))
            let created = try connection.execute(
                """
                INSERT INTO devices (name) VALUES (\(device)) ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
                RETURNING id
                """
            )
            let deviceID = try created.decode(Int64.self, 0, 0, in: "devices")
            let existing = try connection.execute(
                "SELECT role_name FROM device_logins WHERE device_id = \(deviceID)"
            )
            if existing.rowCount > 0 {
                throw ConfigError(
                    keyPath: nil,
                    "device '\(device)' has a login already (role \(try existing.decode(String.self, 0, 0, in: "device_logins"))); "
                        + "remove it first"
                )
            }
            try connection.execute(
                """
                INSERT INTO device_logins (role_name, device_id, auth)
                VALUES (\(device), \(deviceID), \(password == nil ? "certificate" : "password"))
                """
            )
            try connection.execute(
                """
                INSERT INTO device_projects (role_name, project_name)
                SELECT DISTINCT \(device), p FROM unnest(\(PGTextArray(projects))::text[]) AS p
                """
            )
        }
    }

    /// Every device login, by device name.
    package func deviceLogins() throws -> [DeviceLogin] {
        let rows = try connection.execute(
            """
            SELECT d.name, l.role_name, l.auth,
                   coalesce(json_agg(g.project_name ORDER BY g.project_name)
                            FILTER (WHERE g.project_name IS NOT NULL), '[]')::text,
                   l.created_at, d.last_heartbeat_at
            FROM device_logins l JOIN devices d ON d.id = l.device_id
            LEFT JOIN device_projects g ON g.role_name = l.role_name
            GROUP BY d.name, l.role_name, l.auth, l.created_at, d.last_heartbeat_at
            ORDER BY d.name
            """
        )
        return try (0..<rows.rowCount).map { row in
            DeviceLogin(
                device: try rows.decode(String.self, row, 0, in: "devices"),
                role: try rows.decode(String.self, row, 1, in: "device_logins"),
                authentication: try rows.decode(DeviceAuthentication.self, row, 2, in: "device_logins"),
                projects: try names(rows, row, 3),
                createdAt: try rows.decode(Timestamp.self, row, 4, in: "device_logins"),
                lastHeartbeatAt: try rows.decodeIfPresent(Timestamp.self, row, 5, in: "devices")
            )
        }
    }

    /// Drops the device's login role and forgets its grants; the device's history (its row, sessions and files)
    /// stays. One transaction.
    ///
    /// - Returns: the role dropped.
    /// - Throws: `ConfigError` when the device has no login; `LedgerError` when the role cannot be dropped.
    @discardableResult
    package func removeDeviceLogin(device: String) throws -> String {
        try connection.transaction {
            let rows = try connection.execute(
                """
                DELETE FROM device_logins WHERE device_id = (SELECT id FROM devices WHERE name = \(device))
                RETURNING role_name, format('DROP ROLE IF EXISTS %I', role_name)
                """
            )
            guard rows.rowCount == 1 else {
                throw ConfigError(keyPath: nil, "no device login for '\(device)' in the ledger \(location)")
            }
            try connection.executeScript(try rows.decode(String.self, 0, 1, in: "device_logins"))
            return try rows.decode(String.self, 0, 0, in: "device_logins")
        }
    }

    /// The project names a row holds as a JSON array (`json_agg`).
    private func names(_ rows: PGResult, _ row: Int, _ column: Int) throws -> [String] {
        let json = try rows.decode(String.self, row, column, in: "device_projects")
        guard let names = try? JSONDecoder().decode([String].self, from: Data(json.utf8)) else {
            throw LedgerError(
                .unexpectedValue,
                location: location,
                message: "device_projects: project names are not a list"
            )
        }
        return names
    }
}
