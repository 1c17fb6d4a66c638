import FleetCore
import FleetLedger

/// What `master device add` and `master device list` print.
package enum DeviceReport {
    /// The new login; its password, shown this once, or how it logs in with a certificate.
    package static func added(device: String, projects: [String], password: String?, ledger: String) -> String {
        var lines = [
            "device \(device): login role \(device) (fleet_device) in the ledger \(ledger); "
                + "projects: \(projects.joined(separator: ", "))"
        ]
        if let password {
            lines.append("password: \(password)")
            lines.append("It is shown only now: put it in the vehicle's ledger URL or ~/.pgpass.")
        } else {
            lines.append(
                "no password: the vehicle logs in with a client certificate whose common name (CN) is \(device) "
                    + "(pg_hba.conf: hostssl … cert)"
            )
        }
        return lines.joined(separator: "\n")
    }

    /// Every device login in a table, or a line saying there is none.
    package static func list(_ logins: [DeviceLogin], ledger: String) -> String {
        guard !logins.isEmpty else { return "no device logins in the ledger \(ledger)" }
        var table = Table([
            "DEVICE": .left, "ROLE": .left, "AUTH": .left, "PROJECTS": .left, "ADDED (UTC)": .left,
            "LAST HEARTBEAT (UTC)": .left,
        ])
        for login in logins {
            table.append([
                login.device, login.role, login.authentication.rawValue, login.projects.joined(separator: ","),
                Formatting.utc(login.createdAt), login.lastHeartbeatAt.map(Formatting.utc) ?? "never",
            ])
        }
        return table.lines.joined(separator: "\n")
    }
}
