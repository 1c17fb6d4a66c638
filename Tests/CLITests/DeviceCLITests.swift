import FleetSystem
import FleetTestSupport
import Foundation
import Testing

/// A vehicle's own ledger login (`master device add`) running every command a vehicle runs, against the real
/// PostgreSQL (row-level security) and S3 server.
@Suite(.serialized)
struct DeviceCLITests {
    @Test func aVehicleLoginUploadsRetriesRunsOnceAndTheAgentOnItsOwnRows() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let admin = try database.connect()
        #expect(try CLI.run("master", ["migrate", "--database", database.url]).status == 0)

        // An admin adds the vehicle; its password is printed once.
        let name = "truck-" + UUID().uuidString.prefix(8).lowercased()
        let project = "vehicle-logs"
        let added = try CLI.run("master", ["device", "add", name, "--project", project, "--database", database.url])
        #expect(added.status == 0, "\(added.stderr)")
        defer { _ = try? CLI.run("master", ["device", "remove", name, "--database", database.url]) }
        let password = try #require(
            added.stdout.split(separator: "\n").first { $0.hasPrefix("password: ") }?.dropFirst("password: ".count)
        )
        #expect(password.count == 24)
        var components = try #require(URLComponents(string: try database.url(user: name)))
        components.password = String(password)
        // As a vehicle passes it: in the environment, never on a command line that `ps` shows.
        let asVehicle = s3.environment.merging(["DATABASE_URL": try #require(components.string)]) { $1 }
        let listed = try CLI.run("master", ["device", "list", "--database", database.url])
        #expect(listed.stdout.contains(name) && listed.stdout.contains("password") && listed.stdout.contains(project))

        // upload, cut off by an outage, then retry --auto: all as the vehicle.
        let proxy = try OutageProxy(target: s3.endpoint)
        for index in 0..<600 { try scratch.write("logs/f\(index).log", "log-\(index)") }
        let upload = try CLI.start(
            "upload",
            [
                "--config",
                try configFile(
                    scratch,
                    s3,
                    upload: outageUploadSettings,
                    endpoint: proxy.endpoint,
                    project: project,
                    device: name,
                    source: "logs",
                    file: "logs.json"
                ),
            ],
            environment: asVehicle
        )
        #expect(waitForUploads(admin, atLeast: 20) >= 20)
        try proxy.down()
        let first = upload.wait()
        #expect(first.status == 1, "\(first.stderr)")
        let sessionID = try #require(Int64(first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        try proxy.up()
        let retry = try CLI.run(
            "retry",
            ["--session", String(sessionID), "--auto"],
            environment: asVehicle
        )
        #expect(retry.status == 0, "\(retry.stderr)")
        #expect(try bucketContents(s3).filter { $0.key.hasSuffix(".log") }.count == 600)

        // master once, with its trigger.
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        try scratch.write("bags/run1.bag", "bag-one")
        let once = try CLI.run(
            "master",
            [
                "once", "--config",
                try configFile(
                    scratch,
                    s3,
                    sections: #""trigger": { "url": "\#(receiver.url)" }"#,
                    project: project,
                    device: name,
                    source: "bags",
                    file: "bags.json"
                ),
            ],
            environment: asVehicle
        )
        #expect(once.status == 0, "\(once.stderr)")
        #expect(try receiver.requests().count == 1)
        #expect(try bucketContents(s3)[s3.prefix + "run1.bag"]?.0 == 7)

        // The agent, briefly: a file appears, goes up, and the heartbeat lands on the vehicle's row.
        try FileManager.default.createDirectory(
            at: scratch.url.appendingPathComponent("terminal"),
            withIntermediateDirectories: true
        )
        let agentConfig = try scratch.write(
            "agent.yaml",
            """
            project: { name: \(project) }
            device: \(name)
            s3: { bucket: \(s3.bucket), prefix: "\(s3.prefix)agent", endpoint: "\(s3.endpoint)", region: \(s3.region) }
            sources:
              - { name: terminal, path: terminal }
            keys: { template: "{prefix}/{source}/{relpath}" }
            agent: { stability_seconds: 0.5, upload_on_start: false, heartbeat_seconds: 1 }
            """
        )
        let agent = try CLI.start(
            "master",
            ["run", "--config", agentConfig],
            environment: asVehicle
        )
        defer { kill(agent.process.processIdentifier, SIGKILL) }
        try scratch.write("terminal/one.log", "one")
        #expect(waitForUploads(admin, atLeast: 602) == 602)
        kill(agent.process.processIdentifier, SIGTERM)
        let stopped = agent.wait()
        #expect(stopped.status == 0, "\(stopped.stderr)")
        #expect(try bucketContents(s3)[s3.prefix + "agent/terminal/one.log"]?.0 == 3)

        // Every row it wrote is its device's.
        let rows = try admin.execute(
            """
            SELECT (SELECT count(*) FROM sync_sessions WHERE device_id <> d.id OR status = 'running'),
                   (SELECT count(*) FROM sync_sessions WHERE device_id = d.id),
                   (SELECT count(*) FROM device_heartbeats WHERE device_id = d.id),
                   (SELECT count(*) FROM trigger_events)
            FROM devices d WHERE d.name = \(name)
            """
        )
        #expect(rows.int(0, 0) == 0)
        #expect((rows.int(0, 1) ?? 0) >= 3)
        #expect((rows.int(0, 2) ?? 0) >= 1)
        #expect(rows.int(0, 3) == 1)

        // Another vehicle cannot see the session; once removed, the login is gone.
        let other = try TestDevice(database, projects: [project])
        defer { other.remove() }
        let foreign = try CLI.run("retry", ["--session", String(sessionID), "--database", other.url])
        #expect(foreign.status == 2, "\(foreign.stderr)")
        #expect(foreign.reason.contains("\(sessionID)"), "\(foreign.reason)")
        let removed = try CLI.run("master", ["device", "remove", name, "--database", database.url])
        #expect(removed.status == 0, "\(removed.stderr)")
        let after = try CLI.run("master", ["status"], environment: asVehicle)
        #expect(after.status == 3)
        #expect(after.reason.contains("cannot connect to the ledger"), "\(after.reason)")
    }

    @Test func deviceCommandsRefuseBadInputWithAOneLineReason() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let existing = try TestDevice(database, projects: ["survey"])
        defer { existing.remove() }
        let cases: [([String], String)] = [
            (
                ["add", "pg_monitor2", "--project", "p"],
                "Error: device name 'pg_monitor2': reserved for PostgreSQL's or fleet-upload's own roles"
            ),
            (
                ["add", "fleet_admin", "--project", "p"],
                "Error: device name 'fleet_admin': reserved for PostgreSQL's or fleet-upload's own roles"
            ),
            (
                ["add", "bad name", "--project", "p"],
                "Error: device name 'bad name': only letters, digits, '.', '_' and '-' may be used"
            ),
            (["add", "rig-x"], "Error: --project: give at least one project the device may use"),
            (
                ["add", existing.name, "--project", "p"],
                "master: a role named '\(existing.name)' exists already in this PostgreSQL cluster"
            ),
            (["remove", "nobody-here"], "master: no device login for 'nobody-here' in the ledger"),
        ]
        for (arguments, reason) in cases {
            let result = try CLI.run("master", ["device"] + arguments + ["--database", database.url])
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.reason.hasPrefix(reason), "\(arguments): \(result.reason)")
        }
        #expect(try database.connect().execute("SELECT count(*) FROM device_logins").int(0, 0) == 1)
    }
}
