import FleetTestSupport
import Foundation
import Testing

/// Installing on a vehicle: scripts/install.sh and uninstall.sh into temporary directories (no systemd, no apt,
/// no build), the systemd unit, scripts/agent.sh's bookkeeping, and every script's syntax and lint.
struct DeploymentScriptTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
        .standardizedFileURL
    static let binaries = ["upload", "retry", "trigger", "master"]
    /// The scripts this suite owns are held to every shellcheck finding; the others to errors.
    static let deploymentScripts = ["install.sh", "uninstall.sh", "agent.sh"]

    /// A vehicle's configuration with two sources inside the scratch directory.
    static func agentConfig(in scratch: Scratch, workers: Int = 4, s3: TestS3? = nil) throws -> String {
        for source in ["logs/terminal", "logs/ros"] {
            try FileManager.default.createDirectory(
                at: scratch.url.appendingPathComponent(source),
                withIntermediateDirectories: true
            )
        }
        return try scratch.write(
            "config/agent.yaml",
            """
            project:
              name: deploy-test
            device: vehicle-test-001
            s3:
              bucket: fleet-test
              region: us-east-1
            \(s3.map { "  endpoint: \($0.endpoint)\n  prefix: \($0.prefix.dropLast())" } ?? "")
            agent:
              stability_seconds: 1
              stop_timeout_seconds: 5
            sources:
              - name: terminal
                path: \(scratch.url.path)/logs/terminal
              - name: ros
                path: \(scratch.url.path)/logs/ros
            upload:
              workers: \(workers)

            """
        )
    }

    /// Paths of one test install, all below the scratch directory.
    struct Layout {
        let scratch: Scratch
        var prefix: String { scratch.url.path + "/prefix" }
        var configDir: String { scratch.url.path + "/etc" }
        var stateDir: String { scratch.url.path + "/state" }
        var buildDir: String { scratch.url.path + "/build" }
        var unit: String { prefix + "/share/fleet-upload/fleet-agent.service" }

        /// BUILD_DIR/release holds links to the binaries this test run was built with.
        init(scratch: Scratch) throws {
            self.scratch = scratch
            let release = scratch.url.appendingPathComponent("build/release")
            try FileManager.default.createDirectory(at: release, withIntermediateDirectories: true)
            for binary in DeploymentScriptTests.binaries {
                try FileManager.default.createSymbolicLink(
                    at: release.appendingPathComponent(binary),
                    withDestinationURL: CLI.binaries.appendingPathComponent(binary)
                )
            }
        }

        func install(_ extra: [String]) throws -> CLIResult {
            try CLI.runTool(
                repo.appendingPathComponent("scripts/install.sh").path,
                [
                    "--no-systemd", "--no-build", "--no-apt", "--prefix", prefix, "--config-dir", configDir,
                    "--state-dir", stateDir, "--build-dir", buildDir,
                ] + extra
            )
        }

        func uninstall(_ extra: [String]) throws -> CLIResult {
            try CLI.runTool(
                repo.appendingPathComponent("scripts/uninstall.sh").path,
                ["--no-systemd", "--prefix", prefix, "--config-dir", configDir, "--state-dir", stateDir] + extra
            )
        }
    }

    static func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? Int
    }

    static func modified(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    static func contents(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    @Test func installPutsEveryFileInPlaceTwiceAndUninstallPurgesThem() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let layout = try Layout(scratch: scratch)
        let config = try Self.agentConfig(in: scratch)
        let installedConfig = layout.configDir + "/agent.yaml"
        let envFile = layout.configDir + "/agent.env"

        let first = try layout.install(["--config", config, "--skip-check"])

        #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
        #expect(first.stderr.contains("--skip-check"), "the unchecked configuration is pointed out: \(first.stderr)")
        for binary in Self.binaries {
            let path = layout.prefix + "/bin/" + binary
            #expect(Self.mode(path) == 0o755, "\(path)")
            #expect(first.stdout.contains("\(path): installed"), "\(first.stdout)")
        }
        #expect(Self.mode(layout.configDir) == 0o750)
        #expect(Self.mode(layout.stateDir) == 0o750)
        #expect(Self.mode(installedConfig) == 0o640)
        #expect(Self.contents(installedConfig) == Self.contents(config))
        #expect(Self.mode(envFile) == 0o600)
        #expect(Self.contents(envFile)?.contains("#DATABASE_URL=") == true)
        #expect(!Self.exists(layout.configDir + "/.agent-new.yaml"))
        let unit = Self.unitValues(try #require(Self.contents(layout.unit), "the rendered unit at \(layout.unit)"))
        #expect(unit["ExecStart"] == ["\(layout.prefix)/bin/master run --config \(installedConfig)"])
        #expect(unit["EnvironmentFile"] == ["-\(envFile)"])
        #expect(unit["Environment"] == ["STATE_DIRECTORY=\(layout.stateDir)"])
        #expect(unit["StateDirectory"] == nil, "StateDirectory= only names directories under /var/lib")
        let version = try CLI.runTool(layout.prefix + "/bin/master", ["--version"])
        #expect(version.status == 0, "the installed master runs: \(version.stderr)")

        // The operator fills in agent.env; a second run keeps it and rewrites nothing.
        let credentials = "DATABASE_URL=postgresql://fleet@db.invalid/fleet\n"
        try (Self.contents(envFile)! + credentials).write(toFile: envFile, atomically: false, encoding: .utf8)
        let masterTime = Self.modified(layout.prefix + "/bin/master")
        let configTime = Self.modified(installedConfig)

        let second = try layout.install(["--config", config, "--skip-check"])

        #expect(second.status == 0, "\(second.stdout)\n\(second.stderr)")
        for binary in Self.binaries {
            #expect(second.stdout.contains("\(layout.prefix)/bin/\(binary): unchanged"), "\(second.stdout)")
            #expect(Self.mode(layout.prefix + "/bin/" + binary) == 0o755)
        }
        #expect(second.stdout.contains("\(installedConfig): unchanged"), "\(second.stdout)")
        #expect(second.stdout.contains("\(envFile): kept"), "\(second.stdout)")
        #expect(second.stdout.contains("\(layout.unit): unchanged"), "\(second.stdout)")
        #expect(Self.contents(envFile)?.hasSuffix(credentials) == true, "agent.env keeps what the operator wrote")
        #expect(Self.mode(envFile) == 0o600)
        #expect(Self.modified(layout.prefix + "/bin/master") == masterTime)
        #expect(Self.modified(installedConfig) == configTime)
        #expect(!Self.exists(installedConfig + ".previous"))

        // Without --purge the configuration and the state stay.
        let keep = try layout.uninstall([])

        #expect(keep.status == 0, "\(keep.stdout)\n\(keep.stderr)")
        for binary in Self.binaries { #expect(!Self.exists(layout.prefix + "/bin/" + binary)) }
        #expect(!Self.exists(layout.unit))
        #expect(Self.contents(envFile)?.hasSuffix(credentials) == true)
        #expect(Self.exists(installedConfig) && Self.exists(layout.stateDir))

        let purge = try layout.uninstall(["--purge"])
        let again = try layout.uninstall(["--purge"])

        #expect(purge.status == 0, "\(purge.stdout)\n\(purge.stderr)")
        #expect(purge.stdout.contains("--purge: deleting \(layout.configDir)"), "\(purge.stdout)")
        #expect(!Self.exists(layout.configDir) && !Self.exists(layout.stateDir))
        #expect(again.status == 0, "uninstalling twice is fine: \(again.stderr)")
        #expect(again.stdout.contains("\(layout.prefix)/bin/master: not installed"), "\(again.stdout)")
    }

    @Test func aNewConfigurationReplacesTheOldOneWhichIsKeptAsPrevious() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let layout = try Layout(scratch: scratch)
        let old = try Self.agentConfig(in: scratch)
        let new = try scratch.write(
            "new/agent.yaml",
            Self.contents(old)!.replacingOccurrences(of: "workers: 4", with: "workers: 6")
        )
        let installedConfig = layout.configDir + "/agent.yaml"

        let first = try layout.install(["--config", old, "--skip-check"])
        let second = try layout.install(["--config", new, "--skip-check"])
        let third = try layout.install(["--skip-check"])

        #expect(first.status == 0, "\(first.stderr)")
        #expect(second.status == 0, "\(second.stderr)")
        #expect(Self.contents(installedConfig) == Self.contents(new))
        #expect(Self.contents(installedConfig + ".previous") == Self.contents(old))
        #expect(third.status == 0, "\(third.stderr)")
        #expect(third.stdout.contains("\(installedConfig): kept"), "without --config the installed one stays")
        #expect(Self.contents(installedConfig) == Self.contents(new))
    }

    /// The check runs on the new file next to the old one; a refusal leaves the installed configuration alone.
    @Test func aConfigurationTheCheckRefusesIsNotInstalled() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let layout = try Layout(scratch: scratch)
        let good = try Self.agentConfig(in: scratch)
        let bad = try scratch.write(
            "bad/agent.yaml",
            Self.contents(good)!.replacingOccurrences(of: "workers: 4", with: "workers: 0")
        )
        let installedConfig = layout.configDir + "/agent.yaml"
        _ = try layout.install(["--config", good, "--skip-check"])

        let refused = try layout.install(["--config", bad])

        #expect(refused.status == 2, "\(refused.stdout)\n\(refused.stderr)")
        #expect(refused.stdout.contains("upload.workers"), "the check's reason is shown: \(refused.stdout)")
        #expect(refused.stderr.contains("\(bad) was not installed"), "\(refused.stderr)")
        #expect(Self.contents(installedConfig) == Self.contents(good))
        #expect(!Self.exists(layout.configDir + "/.agent-new.yaml"))
    }

    /// The check runs with agent.env's environment (and nothing of the caller's): the service's view.
    @Test func installChecksTheConfigurationWithAgentEnvAgainstTheLedgerAndBucket() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let layout = try Layout(scratch: scratch)
        let config = try Self.agentConfig(in: scratch, s3: s3)
        let envFile = try scratch.write(
            "etc/agent.env",
            """
            # as an operator writes it
            DATABASE_URL=\(database.url)
              AWS_ACCESS_KEY_ID = \(s3.accessKeyID)
            AWS_SECRET_ACCESS_KEY="\(s3.secretAccessKey)"
            AWS_EC2_METADATA_DISABLED=true

            """
        )
        chmod(envFile, 0o600)

        let installed = try layout.install(["--config", config])

        #expect(installed.status == 0, "\(installed.stdout)\n\(installed.stderr)")
        #expect(installed.stdout.contains("✔ bucket fleet-test"), "\(installed.stdout)")
        #expect(installed.stdout.contains("\(layout.configDir)/agent.yaml: installed from \(config)"))
        #expect(!installed.stderr.contains("not checked"), "\(installed.stderr)")
    }

    @Test func installRefusesAMissingConfigurationAndUnknownOptions() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let layout = try Layout(scratch: scratch)

        let missing = try layout.install(["--config", scratch.url.path + "/nowhere.yaml"])
        let unknown = try layout.install(["--bogus"])

        #expect(missing.status == 2)
        #expect(missing.stderr.contains("nowhere.yaml: no such file"), "\(missing.stderr)")
        #expect(unknown.status == 2)
        #expect(unknown.reason == "install: unknown option: --bogus (see scripts/install.sh --help)")
        #expect(!Self.exists(layout.prefix), "nothing was installed")
    }

    // MARK: - The unit

    static func unitValues(_ text: String) -> [String: [String]] {
        var values: [String: [String]] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && line.contains("=") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            values[parts[0], default: []].append(parts.count > 1 ? parts[1] : "")
        }
        return values
    }

    @Test func theUnitHasTheKeysTheAgentNeedsAndNoneThatBreakIt() throws {
        let text = try String(
            contentsOf: Self.repo.appendingPathComponent("systemd/fleet-agent.service"),
            encoding: .utf8
        )
        let values = Self.unitValues(text)

        let required: [String: String] = [
            "Type": "notify",
            "ExecStart": "/usr/local/bin/master run --config /etc/fleet-upload/agent.yaml",
            "EnvironmentFile": "-/etc/fleet-upload/agent.env",
            "ExecReload": "/bin/kill -HUP $MAINPID",
            "Restart": "always",
            "RestartSec": "5",
            "TimeoutStopSec": "60",
            "KillMode": "mixed",
            "StateDirectory": "fleet-upload",
            "After": "network-online.target",
            "Wants": "network-online.target",
            "NoNewPrivileges": "yes",
            "PrivateTmp": "yes",
            "WantedBy": "multi-user.target",
        ]
        for (key, value) in required.sorted(by: { $0.key < $1.key }) {
            #expect(values[key] == [value], "\(key)=\(value)")
        }
        // The agent reads /home/… and /var/log and deletes uploaded files there.
        #expect(values["ProtectHome"] == nil)
        #expect(values["ProtectSystem"]?.contains("strict") != true)
        #expect(values["ReadOnlyPaths"] == nil && values["InaccessiblePaths"] == nil)
    }

    /// `systemd-analyze verify` on the unit, its ExecStart pointed at a binary that exists here (verify insists).
    /// Without the tool the key check above is what remains, and this test says so by failing.
    @Test func theUnitPassesSystemdAnalyzeVerify() throws {
        let tool = try #require(
            ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first {
                FileManager.default.isExecutableFile(atPath: $0)
            },
            "systemd-analyze not found: apt-get install -y systemd (the key check covers the rest)"
        )
        let scratch = try Scratch()
        defer { scratch.remove() }
        let text = try String(
            contentsOf: Self.repo.appendingPathComponent("systemd/fleet-agent.service"),
            encoding: .utf8
        )
        let unit = try scratch.write(
            "fleet-agent.service",
            text.replacingOccurrences(
                of: "/usr/local/bin/master",
                with: CLI.binaries.appendingPathComponent("master").path
            )
        )

        let result = try CLI.runTool(tool, ["verify", "--man=no", unit])

        // verify exits 0 on unknown keys and bad values and only warns, naming the file: no such line is allowed.
        let complaints = (result.stdout + result.stderr).split(separator: "\n").filter { $0.contains("fleet-agent") }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(complaints.isEmpty, "\(complaints.joined(separator: "\n"))")
    }

    // MARK: - agent.sh

    func agent(_ arguments: [String], stateDir: String) throws -> CLIResult {
        try CLI.runTool(
            Self.repo.appendingPathComponent("scripts/agent.sh").path,
            arguments + ["--state-dir", stateDir]
        )
    }

    @Test func agentStatusAndStopHandleNoAgentAndAStalePIDFile() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let state = scratch.url.path + "/agent"

        let none = try agent(["status"], stateDir: state)
        let stopNone = try agent(["stop"], stateDir: state)
        // A PID that is alive but not `master run` (this test process) is not taken for the agent.
        try scratch.write("agent/agent.pid", "\(getpid())\n")
        let stale = try agent(["status"], stateDir: state)
        let reload = try agent(["reload"], stateDir: state)
        let stopStale = try agent(["stop"], stateDir: state)

        #expect(none.status == 3 && none.stdout.contains("not running"), "\(none.stdout)")
        #expect(stopNone.status == 0 && stopNone.stdout.contains("not running"))
        #expect(stale.status == 1, "\(stale.stdout)")
        #expect(stale.stdout.contains("stale PID file"), "\(stale.stdout)")
        #expect(reload.status == 3, "no SIGHUP to a process that is not the agent: \(reload.stderr)")
        #expect(stopStale.status == 0, "\(stopStale.stderr)")
        #expect(stopStale.stdout.contains("removed stale PID file"), "\(stopStale.stdout)")
        #expect(!Self.exists(state + "/agent.pid"))
    }

    @Test func agentStartRefusesWithoutAConfigurationAndReportsAnAgentThatExitsAtOnce() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let state = scratch.url.path + "/agent"
        let build = scratch.url.appendingPathComponent("build")
        try FileManager.default.createDirectory(at: build, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            at: build.appendingPathComponent("debug"),
            withDestinationURL: CLI.binaries
        )
        let good = try Self.agentConfig(in: scratch)
        let bad = try scratch.write(
            "bad.yaml",
            Self.contents(good)!.replacingOccurrences(of: "workers: 4", with: "workers: 0")
        )

        let noConfig = try agent(["start"], stateDir: state)
        let refused = try agent(["start", "--no-build", "--build-dir", build.path, "--config", bad], stateDir: state)
        let usage = try agent(["bogus"], stateDir: state)

        #expect(noConfig.status == 2)
        #expect(noConfig.reason.contains("start needs --config FILE"), "\(noConfig.stderr)")
        #expect(refused.status == 2, "master run exits 2 on a bad configuration: \(refused.stderr)")
        #expect(refused.reason.contains("the agent exited at once (status 2)"), "\(refused.stderr)")
        #expect(refused.stderr.contains("upload.workers"), "the log's reason is shown: \(refused.stderr)")
        #expect(!Self.exists(state + "/agent.pid"))
        #expect(usage.status == 2 && usage.reason.hasPrefix("usage: scripts/agent.sh"))
    }

    /// The real `master run` against the test ledger and bucket: start, refuse a second start, status, reload,
    /// a clean stop on SIGTERM.
    @Test func agentStartsReloadsAndStopsTheAgent() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let state = scratch.url.path + "/agent"
        let build = scratch.url.appendingPathComponent("build")
        try FileManager.default.createDirectory(at: build, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            at: build.appendingPathComponent("debug"),
            withDestinationURL: CLI.binaries
        )
        let config = try Self.agentConfig(in: scratch, s3: s3)
        let environment = s3.environment.merging(["DATABASE_URL": database.url]) { $1 }
        let run = { (arguments: [String]) in
            try CLI.runTool(
                Self.repo.appendingPathComponent("scripts/agent.sh").path,
                arguments + ["--state-dir", state, "--no-build", "--build-dir", build.path],
                environment: environment
            )
        }

        let start = try run(["start", "--config", config])
        defer { _ = try? run(["stop"]) }
        let twice = try run(["start", "--config", config])
        let status = try run(["status"])
        let reload = try run(["reload"])
        let stop = try run(["stop"])
        let after = try run(["status"])

        #expect(start.status == 0, "\(start.stdout)\n\(start.stderr)")
        #expect(start.stdout.contains("started, pid"), "\(start.stdout)")
        #expect(twice.status == 3 && twice.reason.contains("already running"), "\(twice.stderr)")
        #expect(status.status == 0 && status.stdout.contains("running, pid"), "\(status.stdout)")
        #expect(reload.status == 0, "\(reload.stderr)")
        #expect(stop.status == 0 && stop.stdout.contains("stopped"), "\(stop.stderr)")
        #expect(!stop.stderr.contains("SIGKILL"), "SIGTERM was enough: \(stop.stderr)")
        #expect(after.status == 3, "\(after.stdout)")
        #expect(!Self.exists(state + "/agent.pid"))
    }

    // MARK: - Every script

    static var allScripts: [String] {
        let names =
            (try? FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("scripts").path)) ?? []
        return names.filter { $0.hasSuffix(".sh") }.sorted()
    }

    @Test(arguments: allScripts) func scriptParsesAndPassesShellcheck(_ name: String) throws {
        let path = Self.repo.appendingPathComponent("scripts/" + name).path
        #expect(FileManager.default.isExecutableFile(atPath: path), "\(name) is executable")

        let syntax = try CLI.runTool("/bin/bash", ["-n", path])
        #expect(syntax.status == 0, "bash -n \(name): \(syntax.stderr)")

        let shellcheck = try #require(
            ["/usr/bin/shellcheck", "/usr/local/bin/shellcheck"].first {
                FileManager.default.isExecutableFile(atPath: $0)
            },
            "shellcheck not found: apt-get install -y shellcheck (scripts/setup.sh installs it)"
        )
        let severity = Self.deploymentScripts.contains(name) ? "style" : "error"
        let lint = try CLI.runTool(shellcheck, ["--severity=\(severity)", "--external-sources", path])
        #expect(lint.status == 0, "shellcheck --severity=\(severity) \(name):\n\(lint.stdout)")
    }

    @Test func scriptsCoverEveryDeploymentScript() {
        #expect(Set(Self.deploymentScripts).isSubset(of: Set(Self.allScripts)), "\(Self.allScripts)")
    }
}
