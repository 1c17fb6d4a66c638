import ArgumentParser
import FleetCLI
import FleetLedger
import FleetSystem

extension MasterCommand {
    struct Device: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage the vehicles' ledger logins: one PostgreSQL role per device.",
            discussion: """
                Each vehicle logs in to the ledger with a role of its own, a member of fleet_device: row-level
                security lets it read and write only its own device's sessions, files, heartbeats and deletions,
                and only the projects it was granted. Run these with an admin connection (a role that may
                create roles, such as the one that migrated the ledger).
                """,
            subcommands: [Add.self, List.self, Remove.self]
        )
    }
}

extension MasterCommand.Device {
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the login role of one vehicle and grant it projects.",
            discussion: """
                The role is named after the device (the configuration's `device`) and may use the projects given
                with --project. Its password is printed once; with --certificate it has none and logs in with a
                client certificate whose common name is the device's name (pg_hba.conf `hostssl … cert`).

                Exit codes: 0 added; 2 bad usage, a role of that name exists in the cluster, or the device has a
                login already; 3 ledger unreachable or the connection may not create roles.
                """
        )

        @Argument(help: ArgumentHelp("The device's name, which is also its role's.", valueName: "name"))
        var name: String

        @Option(
            name: .customLong("project"),
            help: ArgumentHelp("A project the device may use (repeat for several).", valueName: "name")
        )
        var projects: [String] = []

        @Flag(help: "No password: the device logs in with a client certificate (CN = the device's name).")
        var certificate = false

        @OptionGroup var common: CommonOptions

        func validate() throws {
            try MasterCommand.Device.validate(name: name)
            if projects.isEmpty { throw ValidationError("--project: give at least one project the device may use") }
            if let empty = projects.firstIndex(of: "") { throw ValidationError("--project \(empty + 1): empty name") }
        }

        func run() throws {
            let ledger = try Ledger(url: common.databaseURL, logger: common.logger(label: "fleet.master"))
            let password = certificate ? nil : MasterCommand.Device.newPassword()
            try ledger.addDeviceLogin(device: name, projects: projects, password: password)
            standardOutput(
                DeviceReport.added(device: name, projects: projects, password: password, ledger: ledger.location)
            )
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the device logins: role, authentication, projects, last heartbeat.",
            discussion: "Exit codes: 0 listed; 3 ledger unreachable or the output could not be written."
        )

        @OptionGroup var common: CommonOptions

        func run() throws {
            let ledger = try Ledger(url: common.databaseURL, logger: common.logger(label: "fleet.master"))
            standardOutput(DeviceReport.list(try ledger.deviceLogins(), ledger: ledger.location))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop a device's login role; its history stays in the ledger.",
            discussion:
                "Exit codes: 0 removed; 2 no such device login; 3 ledger unreachable or the role cannot be dropped."
        )

        @Argument(help: ArgumentHelp("The device's name.", valueName: "name"))
        var name: String

        @OptionGroup var common: CommonOptions

        func run() throws {
            let ledger = try Ledger(url: common.databaseURL, logger: common.logger(label: "fleet.master"))
            let role = try ledger.removeDeviceLogin(device: name)
            standardOutput("device \(name): login role \(role) dropped from the ledger \(ledger.location)")
        }
    }

    /// A role name PostgreSQL keeps as given (at most 63 bytes) that no built-in or fleet group role has.
    static func validate(name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 63 else {
            throw ValidationError("device name: must be 1 to 63 bytes, got \(name.utf8.count)")
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard name.allSatisfy(allowed.contains) else {
            throw ValidationError("device name '\(name)': only letters, digits, '.', '_' and '-' may be used")
        }
        guard !name.lowercased().hasPrefix("pg_"), !(Ledger.groupRoles + ["public"]).contains(name.lowercased()) else {
            throw ValidationError("device name '\(name)': reserved for PostgreSQL's or fleet-upload's own roles")
        }
    }

    /// 24 characters from 59 (about 141 bits; no l, I or O to misread), from the system's secure random source.
    static func newPassword() -> String {
        let alphabet = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<24).map { _ in alphabet.randomElement(using: &generator)! })
    }
}
