import FleetAWS
import FleetCore
import Foundation
import Testing

/// The docker-compose demo (docker-compose.yml, Dockerfile, docker/): Docker does not run on the build machines,
/// so these check what can be checked without it — the files parse, name the services the README promises, and
/// mount only files that exist.
struct ComposeFileTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")
        .standardizedFileURL

    private static func yaml(_ relativePath: String) throws -> ConfigValue {
        let text = try String(contentsOf: repo.appendingPathComponent(relativePath), encoding: .utf8)
        return try ConfigValue.parseYAML(text)
    }

    private static func services() throws -> [(key: String, value: ConfigValue)] {
        guard case .object(let top) = try yaml("docker-compose.yml"),
            case .object(let services)? = top.first(where: { $0.key == "services" })?.value
        else {
            Issue.record("docker-compose.yml has no services mapping")
            return []
        }
        return services
    }

    @Test func composeFileParsesAndNamesEveryDemoService() throws {
        let names = Set(try Self.services().map(\.key))
        #expect(names == ["postgres", "minio", "createbucket", "logs", "agent", "grafana"])
    }

    @Test func everyFileTheComposeFileMountsOrBuildsFromExists() throws {
        var mounted: [String: String] = [:]
        for (service, definition) in try Self.services() {
            let volumes = definition.member("volumes")?.strings ?? []
            for volume in volumes where volume.hasPrefix("./") {
                let parts = volume.split(separator: ":").map(String.init)
                let path = Self.repo.appendingPathComponent(parts[0]).path
                #expect(FileManager.default.fileExists(atPath: path), "\(service) mounts \(parts[0]), which is missing")
                if parts.count > 1 { mounted[parts[1]] = parts[0] }
            }
            if let context = definition.member("build")?.scalar {
                let dockerfile = Self.repo.appendingPathComponent(context).appendingPathComponent("Dockerfile")
                #expect(
                    FileManager.default.fileExists(atPath: dockerfile.path),
                    "\(service) builds without a Dockerfile"
                )
            }
        }
        #expect(mounted["/etc/fleet-upload/agent.yaml"] == "./docker/agent.yaml")
        #expect(mounted["/etc/grafana/provisioning"] == "./grafana/provisioning")
        #expect(mounted["/var/lib/grafana/dashboards/fleet-upload"] == "./grafana/dashboards")
    }

    @Test func theAgentRunsTheDemoConfigurationAgainstMinIO() throws {
        let agent = try #require(try Self.services().first { $0.key == "agent" }?.value)
        #expect(agent.member("command")?.strings == ["master", "run", "--config", "/etc/fleet-upload/agent.yaml"])
        let config = try ConfigLoader.load(path: Self.repo.appendingPathComponent("docker/agent.yaml").path)
        #expect(config.s3.endpoint == "http://minio:9000")
        #expect(config.s3.bucket == "fleet-demo")
        let createBucket = try #require(try Self.services().first { $0.key == "createbucket" }?.value)
        #expect(createBucket.member("entrypoint")?.strings.joined().contains("demo/fleet-demo") == true)
    }

    @Test func grafanaGetsEveryVariableItsDataSourceReads() throws {
        let grafana = try #require(try Self.services().first { $0.key == "grafana" }?.value)
        let environment = grafana.member("environment")?.keys ?? []
        let dataSource = try String(
            contentsOf: Self.repo.appendingPathComponent("grafana/provisioning/datasources/fleet.yaml"),
            encoding: .utf8
        )
        let settings = dataSource.split(separator: "\n").filter {
            !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#")
        }
        let read = Set(settings.flatMap { $0.matches(of: /\$\{([A-Z_]+)\}/).map { String($0.output.1) } })
        #expect(!read.isEmpty)
        #expect(read.isSubset(of: Set(environment)), "missing: \(read.subtracting(environment).sorted())")
    }

    @Test func dockerfileBuildsStaticallyAndShipsOnlyTheRuntimeLibraries() throws {
        let dockerfile = try String(contentsOf: Self.repo.appendingPathComponent("Dockerfile"), encoding: .utf8)
        #expect(dockerfile.contains("--static-swift-stdlib"))
        #expect(dockerfile.contains("FROM debian:bookworm-slim"))
        for package in ["libpq5", "libcurl4", "libssl3", "libzstd1", "libxml2", "ca-certificates"] {
            #expect(dockerfile.contains(package), "the runtime image lacks \(package)")
        }
        let ignored = try String(contentsOf: Self.repo.appendingPathComponent(".dockerignore"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        for entry in [".build*", "bench/out", ".pg", ".s3", ".soak", ".agent"] {
            #expect(ignored.contains(entry), ".dockerignore lacks \(entry)")
        }
    }
}

extension ConfigValue {
    fileprivate func member(_ key: String) -> ConfigValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    fileprivate var keys: [String] {
        guard case .object(let members) = self else { return [] }
        return members.map(\.key)
    }

    fileprivate var scalar: String? {
        switch self {
        case .string(let text), .plain(let text): text
        default: nil
        }
    }

    fileprivate var strings: [String] {
        guard case .array(let items) = self else { return [] }
        return items.compactMap(\.scalar)
    }
}
