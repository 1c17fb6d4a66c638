import FleetAWS
import FleetSystem
import Foundation
import Testing

@testable import FleetCore

/// The defaults docs/configuration.md states, checked against what `FleetConfig.resolved` gives when a key is
/// absent: every row of the table, and every resolved key has a row.
struct ConfigDefaultsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// One row of the `| key | default | meaning |` table.
    struct Row {
        var key: String
        var defaultText: String
        var meaning: String
    }

    /// The rows of the one table whose header is `| key | default | meaning |`, in order.
    static func documentedRows() throws -> [Row] {
        let text = try String(
            contentsOf: repository.appendingPathComponent("docs/configuration.md"),
            encoding: .utf8
        )
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let header = lines.firstIndex(of: "| key | default | meaning |") else { return [] }
        var rows: [Row] = []
        for line in lines[(header + 2)...] {
            guard line.hasPrefix("|") else { break }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                .map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3 else {
                Issue.record("not a row of three cells: \(line)")
                continue
            }
            rows.append(
                Row(
                    key: cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`")),
                    defaultText: cells[1],
                    meaning: cells[2...].joined(separator: "|")
                )
            )
        }
        return rows
    }

    // MARK: - Configurations

    /// Every required key and nothing else: the file a minimal session gives.
    static let minimal = """
        project: { name: p }
        s3: { bucket: fleet-data }
        source: { path: /data/set }

        """

    /// Every section present but empty, and the sections whose defaults only apply when present (deletion
    /// policies) present with only their required keys.
    static let sectionsPresent = """
        project: { name: p }
        s3: { bucket: fleet-data }
        source: { path: /data/set }
        keys: {}
        scan: {}
        upload: {}
        retry: {}
        trigger: {}
        agent: {}
        deletion:
          after_upload: {}
          age: { max_age_days: 14 }
          emergency: {}
        metrics:
          cloudwatch: {}

        """

    static func decode(_ yaml: String) throws -> FleetConfig {
        try ConfigLoader.decode(ConfigValue.parseYAML(yaml))
    }

    /// The error decoding `yaml` gives, or nil when it decodes.
    static func decodingError(_ yaml: String) -> ConfigError? {
        do {
            _ = try decode(yaml)
            return nil
        } catch let error as ConfigError {
            return error
        } catch {
            Issue.record("expected a ConfigError, got \(error)")
            return nil
        }
    }

    // MARK: - Flattening

    /// `resolved` as key paths in the file's spelling (`upload.multipart_threshold_mb`) and their values as
    /// text; nested sections are `ResolvedConfig`'s own types, anything else is a value.
    static func flatten(_ resolved: ResolvedConfig) -> [String: String] {
        var result: [String: String] = [:]
        func walk(_ value: Any, path: String) {
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional {
                if let wrapped = mirror.children.first?.value {
                    walk(wrapped, path: path)
                } else {
                    result[path] = "nil"
                }
                return
            }
            let isSection = String(reflecting: type(of: value)).hasPrefix("FleetCore.ResolvedConfig")
            guard isSection, mirror.displayStyle == .struct else {
                result[path] = render(value)
                return
            }
            for child in mirror.children {
                guard let label = child.label else { continue }
                walk(child.value, path: path.isEmpty ? snakeCase(label) : "\(path).\(snakeCase(label))")
            }
        }
        walk(resolved, path: "")
        return result
    }

    /// `multipartThresholdMb` → `multipart_threshold_mb`, as the decoder maps keys.
    static func snakeCase(_ name: String) -> String {
        name.reduce(into: "") { text, character in
            if character.isUppercase {
                text += "_" + character.lowercased()
            } else {
                text.append(character)
            }
        }
    }

    /// A value as the table writes it: `15`, `1` (not `1.0`), `true`, `UTC`, `02:00`, `[]`.
    static func render(_ value: Any) -> String {
        switch value {
        case let number as Double:
            number == number.rounded() && abs(number) < 1e15 ? String(Int(number)) : String(number)
        case let list as [String]: list.isEmpty ? "[]" : list.joined(separator: ", ")
        case let sources as [SourceSettings]: sources.map { $0.name ?? "" }.joined(separator: ", ")
        default: "\(value)"
        }
    }

    /// The one code literal a default cell states: `` `15` `` → `15`, `` `""` `` → an empty string; nil when
    /// the cell is not exactly one code span.
    static func literal(_ cell: String) -> String? {
        guard cell.count >= 2, cell.hasPrefix("`"), cell.hasSuffix("`") else { return nil }
        let inner = String(cell.dropFirst().dropLast())
        guard !inner.contains("`") else { return nil }
        return inner == "\"\"" ? "" : inner
    }

    // MARK: - Keys resolved elsewhere or without a default

    /// Rows whose default is not a value `resolved` holds, each with the check that stands for it.
    static let specialRows: Set<String> = [
        "project.name", "s3.bucket", "source", "sources[]", "sources[].run_folders", "sources[].allow_deletion",
        "sources[].compress", "sources[].compress.codec", "sources[].compress.level", "sources[].compress.include",
        "deletion.age.max_age_days",
        "device", "keys.template", "s3.region", "s3.endpoint", "s3.path_style", "s3.profile", "s3.ca_bundle",
        "s3.credentials_path",
        "metrics.cloudwatch.region", "metrics.cloudwatch.vehicle_id", "metrics.cloudwatch.endpoint",
    ]

    /// Resolved keys without a row of their own, and the row that documents them.
    static let documentedIn: [String: String] = [
        "sources": "sources[]",
        "agent.scan_max_age_days": "agent.scan_existing_files",
        "deletion.emergency.active": "deletion.emergency",
    ]

    // MARK: - Tests

    @Test func theTableHasOneRowPerKey() throws {
        let rows = try Self.documentedRows()
        #expect(rows.count > 40, "the `| key | default | meaning |` table of docs/configuration.md was not found")
        var seen: Set<String> = []
        for row in rows { #expect(seen.insert(row.key).inserted, "\(row.key) has two rows") }
    }

    @Test func everyLiteralDefaultInTheTableIsTheResolvedOne() throws {
        let absent = Self.flatten(try Self.decode(Self.minimal).resolved)
        let present = Self.flatten(try Self.decode(Self.sectionsPresent).resolved)
        for row in try Self.documentedRows() where !Self.specialRows.contains(row.key) {
            let text = row.defaultText
            if let literal = Self.literal(text) {
                // With the section absent (where that leaves the key resolved) and with it present but empty.
                if let value = absent[row.key] {
                    #expect(value == literal, "\(row.key): the table says \(literal), the code gives \(value)")
                }
                #expect(
                    present[row.key] == literal,
                    "\(row.key): the table says \(literal), the code gives \(present[row.key] ?? "no such key")"
                )
                continue
            }
            switch text {
            case "none":
                // No value: a missing optional or an empty list.
                #expect(["nil", "[]"].contains(absent[row.key]), "\(row.key): none, got \(absent[row.key] ?? "-")")
            case "no limit", "always":
                #expect(absent[row.key] == "nil", "\(row.key): \(text), got \(absent[row.key] ?? "no such key")")
            case _ where text.hasPrefix("off"):
                // The policy does not run without its section; emergency keeps its thresholds for warnings.
                let value = absent[row.key] ?? absent[row.key + ".active"].map { $0 == "false" ? "nil" : $0 }
                #expect(value == "nil", "\(row.key): off, got \(value ?? "no such key")")
                if let threshold = text.firstMatch(of: /at `([a-z_]+)`/)?.1 {
                    #expect(absent["\(row.key).\(threshold)"] != nil, "\(row.key): no \(threshold) when off")
                }
            default:
                Issue.record("\(row.key): a default this test does not know how to check: \(text)")
            }
        }
    }

    @Test func everyResolvedKeyHasARow() throws {
        let rows = Set(try Self.documentedRows().map(\.key))
        let keys = Set(Self.flatten(try Self.decode(Self.minimal).resolved).keys)
            .union(Self.flatten(try Self.decode(Self.sectionsPresent).resolved).keys)
        for key in keys.sorted() {
            let documented = rows.contains(Self.documentedIn[key] ?? key)
            #expect(documented, "\(key) is resolved but docs/configuration.md has no row for it")
        }
        for row in rows.sorted() where !Self.specialRows.contains(row) {
            let resolved = keys.contains(row) || Self.documentedIn.values.contains(row)
            #expect(resolved, "docs/configuration.md has a row for \(row), but nothing resolves it")
        }
    }

    @Test func requiredKeysAreNamedWhenMissing() throws {
        let documents: [String: String] = [
            "project.name": "project: {}\ns3: { bucket: fleet-data }\nsource: { path: /d }\n",
            "s3.bucket": "project: { name: p }\ns3: {}\nsource: { path: /d }\n",
            "source": "project: { name: p }\ns3: { bucket: fleet-data }\n",
            "deletion.age.max_age_days": Self.minimal + "deletion: { age: {} }\n",
        ]
        for row in try Self.documentedRows() where row.defaultText.hasPrefix("required") {
            guard let document = documents[row.key] else {
                Issue.record("\(row.key) is documented as required; add a document without it to this test")
                continue
            }
            let error = Self.decodingError(document)
            #expect(error?.keyPath == row.key, "\(row.key): \(error.map { "\($0)" } ?? "decodes without it")")
        }
        let rows = try Self.documentedRows()
        // `source` and `sources[]`: one of the two, named `source` when both are missing.
        #expect(rows.filter { $0.defaultText == "one required" }.map(\.key) == ["source", "sources[]"])
        #expect(Self.decodingError(documents["source"]!)?.keyPath == "source")
    }

    @Test func derivedDefaultsAreTheOnesTheTableDescribes() throws {
        let rows = Dictionary(try Self.documentedRows().map { ($0.key, $0.defaultText) }) { first, _ in first }
        let one = try Self.decode(Self.minimal).resolved
        let several = try Self.decode(
            """
            project: { name: p }
            s3: { bucket: fleet-data }
            sources: [{ name: ros, path: /d/ros }, { name: syslog, path: /d/log }]

            """
        ).resolved

        #expect(rows["device"] == "host name")
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init)
        #expect(one.device == host)

        #expect(
            rows["keys.template"]
                == "`\(one.keys.template)` (one source), `\(several.keys.template)` (several)"
        )

        #expect(rows["sources[].run_folders"] == "`true` for a source named `ros`")
        #expect(several.sources.map(\.runFolders) == [true, false])
        #expect(one.sources.map(\.name) == ["set"])

        #expect(
            rows["sources[].allow_deletion"]
                == "`true`, but `false` below `/var`, `/etc`, `/usr`, `/boot`, `/proc`, `/sys` and for `/`"
        )
        #expect(ResolvedConfig.protectedPrefixes == ["/var", "/etc", "/usr", "/boot", "/proc", "/sys"])
        #expect(one.sources.map(\.allowDeletion) == [true])
        let system = try Self.decode(Self.minimal.replacingOccurrences(of: "/data/set", with: "/var/log")).resolved
        #expect(system.sources.map(\.allowDeletion) == [false])

        let meaning = try Self.documentedRows().first { $0.key == "agent.scan_existing_files" }?.meaning ?? ""
        let days = meaning.firstMatch(of: /default `([0-9.]+)` for the agent/)?.1
        #expect(days.map(String.init) == Self.render(one.agent.scanMaxAgeDays))

        let cloudwatch = one.metrics.cloudwatch
        #expect(rows["metrics.cloudwatch.vehicle_id"] == "`device` (else the host name)")
        #expect(cloudwatch.vehicleId == one.device)
        #expect(try Self.decode(Self.minimal + "device: car-7\n").resolved.metrics.cloudwatch.vehicleId == "car-7")
        #expect(rows["metrics.cloudwatch.region"] == "the S3 region")
        #expect(rows["metrics.cloudwatch.endpoint"] == "AWS's `monitoring` endpoint")
        #expect(cloudwatch.region == nil && cloudwatch.endpoint == nil)
        let context = try Self.context(environment: ["AWS_REGION": "eu-central-1"])
        let client = try CloudWatchClient(settings: cloudwatch, context: context)
        #expect(client.region == "eu-central-1")
        #expect(client.url.hasPrefix("https://monitoring.eu-central-1.amazonaws.com"))
    }

    /// An `S3Context` for the minimal configuration in a home directory without shared AWS files (or with
    /// `configFile` as `~/.aws/config`).
    static func context(environment: [String: String], configFile: String? = nil) throws -> S3Context {
        let home = FileManager.default.temporaryDirectory
            .appendingPathComponent("config-defaults-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        if let configFile {
            let directory = home.appendingPathComponent(".aws")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try configFile.write(to: directory.appendingPathComponent("config"), atomically: true, encoding: .utf8)
        }
        return try S3Context(config: try decode(minimal), environment: environment, homeDirectory: home.path)
    }

    @Test func s3DefaultsComeFromTheEnvironmentAsTheTableSays() throws {
        let rows = Dictionary(try Self.documentedRows().map { ($0.key, $0.defaultText) }) { first, _ in first }

        #expect(rows["s3.region"] == "`us-east-1`")
        #expect(try Self.context(environment: [:]).endpoint.region == "us-east-1")
        #expect(try Self.context(environment: ["AWS_DEFAULT_REGION": "eu-west-1"]).endpoint.region == "eu-west-1")

        #expect(rows["s3.endpoint"] == "`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`, else AWS")
        let both = ["AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1", "AWS_ENDPOINT_URL": "http://127.0.0.1:2"]
        #expect(try Self.context(environment: both).endpoint.authority == "127.0.0.1:1")
        #expect(
            try Self.context(environment: ["AWS_ENDPOINT_URL": "http://127.0.0.1:2"]).endpoint.authority
                == "127.0.0.1:2"
        )
        #expect(try Self.context(environment: [:]).endpoint.isAWS)

        #expect(rows["s3.path_style"] == "`true` for custom endpoints, `false` on AWS")
        #expect(try Self.context(environment: both).endpoint.forcePathStyle)
        #expect(try !Self.context(environment: [:]).endpoint.forcePathStyle)

        #expect(rows["s3.ca_bundle"] == "`AWS_CA_BUNDLE`, else the system's CAs")
        #expect(try Self.context(environment: [:]).endpoint.caBundle == nil)
        #expect(try Self.context(environment: ["AWS_CA_BUNDLE": "/etc/hostname"]).endpoint.caBundle == "/etc/hostname")
        #expect(throws: ConfigError.self) { try Self.context(environment: ["AWS_CA_BUNDLE": "/nonexistent.pem"]) }

        #expect(rows["s3.profile"] == "`AWS_PROFILE`, else `default`")
        let shared = "[default]\nregion = ap-south-1\n\n[profile other]\nregion = sa-east-1\n"
        #expect(try Self.context(environment: [:], configFile: shared).endpoint.region == "ap-south-1")
        #expect(
            try Self.context(environment: ["AWS_PROFILE": "other"], configFile: shared).endpoint.region == "sa-east-1"
        )
    }

    @Test func theSettingsStructsKeepNoDefaultsOfTheirOwn() throws {
        // The decoded file keeps what was written: nothing is filled in before `resolved`.
        let config = try Self.decode(Self.sectionsPresent)
        #expect(config.upload == UploadSettings())
        #expect(config.agent == AgentSettings())
        #expect(config.trigger == TriggerSettings())
    }
}
