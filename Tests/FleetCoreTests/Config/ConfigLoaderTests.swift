import FleetAWS
import FleetSystem
import Foundation
import Testing

@testable import FleetCore

struct ConfigLoaderTests {
    private static let minimalJSON =
        #"{"project": {"name": "p"}, "s3": {"bucket": "fleet-data"}, "source": {"path": "/data"}}"#

    private static func json(_ text: String) throws -> ConfigValue { try ConfigValue.parseJSON(Data(text.utf8)) }

    /// The minimal session document with `extra` merged in at the top level (JSON object members).
    private static func decodeJSON(_ extra: String, overrides: [ConfigOverride] = []) throws -> FleetConfig {
        let text = extra.isEmpty ? minimalJSON : String(minimalJSON.dropLast()) + ", " + extra + "}"
        return try ConfigLoader.decode(json(text), overrides: overrides)
    }

    private static let minimalYAML = """
        project:
          name: p
        s3:
          bucket: fleet-data
        source:
          path: /data

        """

    private static func decodeYAML(_ extra: String, overrides: [ConfigOverride] = []) throws -> FleetConfig {
        try ConfigLoader.decode(ConfigValue.parseYAML(minimalYAML + extra), overrides: overrides)
    }

    private static func error(_ body: () throws -> Void) -> ConfigError? {
        do {
            try body()
            return nil
        } catch let error as ConfigError {
            return error
        } catch {
            Issue.record("expected a ConfigError, got \(error)")
            return nil
        }
    }

    // MARK: - Parsing

    @Test func parsesJSONIntoTypedValues() throws {
        let value = try Self.json(#"{"b": [1, 2.5, true, false, null, "15"], "a": {}}"#)
        #expect(
            value
                == .object([
                    ("b", .array([.integer(1), .double(2.5), .bool(true), .bool(false), .null, .string("15")])),
                    ("a", .object([])),
                ])
        )
    }

    @Test func jsonStringsNumbersAndEscapesAreReadExactly() throws {
        let value = try Self.json(
            #"{"s": "a\"b\\c\/d\n\u00e9\ud83d\ude80", "big": 9223372036854775808, "neg": -0.5e2, "e": "é"}"#
        )
        #expect(value["s"] == .string("a\"b\\c/d\né🚀"))
        #expect(value["big"] == .double(9.223372036854775808e18))
        #expect(value["neg"] == .double(-50))
        #expect(value["e"] == .string("é"))
        #expect(try Self.json("\u{FEFF}[]") == .array([]))
    }

    @Test func duplicateJSONKeyIsRefusedNamingItsPathAndBothLines() {
        let document = "{\n  \"upload\": {\n    \"workers\": 4,\n    \"workers\": 8\n  }\n}"
        let error = Self.error { _ = try Self.json(document) }
        #expect(error?.keyPath == nil)
        #expect(
            error?.message == "invalid JSON: duplicate key 'upload.workers' (first at line 3) at line 4, column 5"
        )
        let nested = Self.error { _ = try Self.json(#"{"a": 1, "b": [{"c": 1, "c": 2}]}"#) }
        #expect(nested?.message == "invalid JSON: duplicate key 'b[0].c' (first at line 1) at line 1, column 25")
    }

    @Test(arguments: [
        ("{\n  \"a\": 1,\n}", "trailing comma after the last member of 'top level' at line 2, column 9"),
        (#"{"a": [1, 2,]}"#, "trailing comma after the last item of 'a' at line 1, column 12"),
        (
            "{\n  \"s3\": {\"bucket\": \"b\", \"pre",
            "the file ends at line 2, column 29 inside the string opened at line 2, column 25"
        ),
        (#"{"a": {"b": 1}"#, "the file ends at line 1, column 15 inside the object opened at line 1, column 1"),
        ("", "the file ends where a value was expected at line 1, column 1"),
        (#"{"a": True}"#, "expected a value, got 'True' at line 1, column 7"),
        (#"{"a": 1 "b": 2}"#, #"expected ',' or '}' after the value of 'a', got '"' at line 1, column 9"#),
        ("{a: 1}", "expected a key in double quotes, got 'a' at line 1, column 2"),
        (#"{"é": 'x'}"#, "expected a value, got ''' at line 1, column 7"),
        (#"{"a": 07}"#, "a number must not start with 0 (write 7, not 07) at line 1, column 7"),
        ("{\"a\": \"x\ny\"}", "a line break inside a string (is a closing quote missing?) at line 1, column 9"),
        (#"{"a": "\q"}"#, #"invalid escape \q at line 1, column 8"#),
        (#"{"a": "\ud800"}"#, #"a \u escape for half of a surrogate pair with no second half at line 1, column 8"#),
        (#"{"a": 1e999}"#, "the number 1e999 is out of range at line 1, column 7"),
        ("// note\n{}", "comments are not allowed in JSON at line 1, column 1"),
        ("{} {}", "'{' after the end of the document at line 1, column 4"),
        ("[[[[", "the file ends at line 1, column 5 inside the list opened at line 1, column 4"),
    ])
    func everyJSONErrorHasALineAndAColumn(document: String, expected: String) {
        let error = Self.error { _ = try Self.json(document) }
        #expect(error?.message == "invalid JSON: " + expected)
    }

    @Test func invalidUTF8AndDeepNestingInJSONAreRefused() {
        let bytes = Data([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D])
        let utf8 = Self.error { _ = try ConfigValue.parseJSON(bytes) }
        #expect(utf8?.message == "invalid JSON: the string is not valid UTF-8 at line 1, column 6")
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        let nested = Self.error { _ = try Self.json(deep) }
        #expect(nested?.message == "invalid JSON: nested deeper than 128 levels at line 1, column 129")
    }

    @Test func parsesYAMLPlainAndQuotedScalarsApart() throws {
        let value = try ConfigValue.parseYAML("a: 15\nb: \"15\"\nc: 'x'\nd: [1, ~]\n")
        #expect(
            value
                == .object([
                    ("a", .plain("15")), ("b", .string("15")), ("c", .string("x")),
                    ("d", .array([.plain("1"), .plain("~")])),
                ])
        )
    }

    @Test func emptyYAMLDocumentIsAnEmptyObject() throws {
        #expect(try ConfigValue.parseYAML("") == .object([]))
        #expect(try ConfigValue.parseYAML("# nothing here\n") == .object([]))
    }

    @Test func invalidJSONIsReportedWithItsPosition() {
        let error = Self.error { _ = try Self.json("{\n  \"a\": 1,\n  \"b\": ]\n}") }
        #expect(error?.keyPath == nil)
        #expect(error?.message.hasPrefix("invalid JSON: ") == true)
        #expect(error?.message.contains("line 3") == true, "\(String(describing: error))")
    }

    @Test func invalidYAMLIsReportedWithItsPosition() {
        let error = Self.error { _ = try ConfigValue.parseYAML("a: [1, 2\nb: 3\n") }
        #expect(error?.keyPath == nil)
        #expect(error?.message.hasPrefix("invalid YAML: ") == true)
        #expect(error?.message.contains("line") == true, "\(String(describing: error))")
    }

    @Test func duplicateYAMLKeyIsRefused() {
        // Yams reports the document as context; the message must stay one short line all the same.
        let error = Self.error { _ = try ConfigValue.parseYAML("x: 0\na: 1\nb: 2\na: 3\n") }
        #expect(error?.message == "invalid YAML: duplicate key 'a' (first at line 2)")
    }

    @Test func yamlAnchorsAndAliasesResolve() throws {
        let value = try ConfigValue.parseYAML("base: &b {x: 1}\ncopy: *b\n")
        #expect(value["copy"] == .object([("x", .plain("1"))]))
    }

    // MARK: - Decoding

    @Test func decodesMinimalSessionWithDefaults() throws {
        let config = try Self.decodeJSON("")
        #expect(config.project.name == "p")
        #expect(config.s3.bucket == "fleet-data")
        #expect(config.source?.path == "/data")
        #expect(config.resolved.upload.workers == .auto)
        #expect(config.resolved.keys.template == "{prefix}/{relpath}")
        #expect(config.s3.region == nil)
        #expect(config.resolved.sources.map(\.name) == ["data"])
        #expect(config.resolved.upload.multipartThresholdBytes == 64 * 1024 * 1024)
    }

    @Test func decodesSnakeCaseKeysFromYAML() throws {
        let config = try Self.decodeYAML(
            """
            keys:
              first_dir_is_bucket: false
              timezone: Asia/Shanghai
            scan:
              min_age_seconds: 300
              max_age_days: 7
              follow_symlinks: yes
              include: ["*.bag", "raw/"]
            upload:
              workers: 15
              multipart_threshold_mb: 128
              part_size_mb: 32

            """
        )
        #expect(config.scan?.minAgeSeconds == 300)
        #expect(config.scan?.maxAgeDays == 7)
        #expect(config.scan?.followSymlinks == true)
        #expect(config.scan?.include == ["*.bag", "raw/"])
        #expect(config.upload?.workers == 15)
        #expect(config.upload?.multipartThresholdMb == 128)
        #expect(config.resolved.upload.partSizeBytes == 32 * 1024 * 1024)
        #expect(config.resolved.keys.timeZone.identifier == "Asia/Shanghai")
    }

    @Test func yamlPlainNumberDecodesAsInteger() throws {
        #expect(try Self.decodeYAML("upload:\n  workers: 15\n").upload?.workers == 15)
        #expect(try Self.decodeYAML("upload:\n  workers: 1_5\n").upload?.workers == 15)
    }

    @Test func quotedNumberIsNotAnInteger() {
        let json = Self.error { _ = try Self.decodeJSON(#""upload": {"workers": "15"}"#) }
        #expect(json?.description == #"upload.workers: expected auto or a whole number, got a string "15""#)
        let yaml = Self.error { _ = try Self.decodeYAML("upload:\n  workers: \"15\"\n") }
        #expect(yaml?.description == #"upload.workers: expected auto or a whole number, got a string "15""#)
    }

    @Test func jsonNumbersAndBooleansKeepTheirTypes() throws {
        let config = try Self.decodeJSON(
            #""scan": {"max_age_days": 7, "min_age_seconds": 60.0, "follow_symlinks": true}"#
        )
        #expect(config.scan?.maxAgeDays == 7)
        #expect(config.scan?.minAgeSeconds == 60)
        #expect(config.scan?.followSymlinks == true)
        let fraction = Self.error { _ = try Self.decodeJSON(#""upload": {"workers": 1.5}"#) }
        #expect(fraction?.description == "upload.workers: expected auto or a whole number, got 1.5")
        let number = Self.error { _ = try Self.decodeJSON(#""scan": {"follow_symlinks": 1}"#) }
        #expect(number?.description == "scan.follow_symlinks: expected true or false, got 1")
        let flag = Self.error { _ = try Self.decodeJSON(#""upload": {"workers": true}"#) }
        #expect(flag?.description == "upload.workers: expected auto or a whole number, got true")
    }

    @Test(arguments: ["null", "~", "", "Null"])
    func yamlNullForARequiredKeyIsMissingNotText(null: String) {
        let error = Self.error {
            _ = try ConfigLoader.decode(
                ConfigValue.parseYAML("project:\n  name: \(null)\ns3: {bucket: fleet-data}\nsource: {path: /d}\n")
            )
        }
        #expect(error?.description == "project.name: is required")
    }

    @Test func quotedNullIsText() throws {
        let config = try ConfigLoader.decode(
            ConfigValue.parseYAML("project:\n  name: 'null'\ns3: {bucket: fleet-data}\nsource: {path: /d}\n")
        )
        #expect(config.project.name == "null")
    }

    @Test func nullMeansAbsent() throws {
        let config = try Self.decodeJSON(#""device": null, "upload": {"workers": null}"#)
        #expect(config.device == nil)
        #expect(config.resolved.upload.workers == .auto)
        #expect(try Self.decodeYAML("device: ~\nupload:\n").device == nil)
    }

    private static let decodingErrors: [(String, String)] = [
        (#""bogus": 1"#, "bogus: unknown key"),
        (#""upload": {"wrokers": 4}"#, "upload.wrokers: unknown key"),
        (#""scan": {"minAgeSeconds": 4}"#, "scan.minAgeSeconds: unknown key"),
        (#""upload": []"#, "upload: expected an object, got a list"),
        (#""scan": {"include": "*.wav"}"#, #"scan.include: expected a list, got a string "*.wav""#),
        (#""scan": {"include": ["*.wav", 3]}"#, "scan.include[1]: expected text, got 3"),
        (
            #""keys": {"first_dir_is_bucket": "yes"}"#,
            #"keys.first_dir_is_bucket: expected true or false, got a string "yes""#
        ),
    ]

    @Test(arguments: decodingErrors)
    func decodingErrorNamesTheKeyPath(extra: String, expected: String) {
        let error = Self.error { _ = try Self.decodeJSON(extra) }
        #expect(error?.description == expected)
    }

    @Test func unknownKeyInsideAListNamesItsIndex() {
        let error = Self.error {
            _ = try ConfigLoader.decode(
                Self.json(
                    #"""
                    {"project": {"name": "p"}, "s3": {"bucket": "fleet-data"},
                     "sources": [{"name": "a", "path": "/a"}, {"name": "b", "path": "/b", "exlude": ["*.tmp"]}]}
                    """#
                )
            )
        }
        #expect(error?.description == "sources[1].exlude: unknown key")
    }

    @Test(arguments: [
        (#"{"s3": {"bucket": "fleet-data"}, "source": {"path": "/d"}}"#, "project: is required"),
        (#"{"project": {}, "s3": {"bucket": "fleet-data"}, "source": {"path": "/d"}}"#, "project.name: is required"),
        (#"{"project": {"name": "p"}, "s3": {"bucket": "fleet-data"}, "source": {}}"#, "source.path: is required"),
        ("[1]", "top level: expected an object of settings, got a list"),
        (#""text""#, #"top level: expected an object of settings, got a string "text""#),
    ])
    func missingOrMisplacedDocumentPartsAreNamed(document: String, expected: String) {
        let error = Self.error { _ = try ConfigLoader.decode(Self.json(document)) }
        #expect(error?.description == expected)
    }

    // MARK: - Validation (FleetConfig.problems)

    private static let validationErrors: [(String, String)] = [
        (#""upload": {"workers": 0}"#, "upload.workers: must be auto or 1…1024, got 0"),
        (#""upload": {"workers": 1025}"#, "upload.workers: must be auto or 1…1024, got 1025"),
        (#""upload": {"part_size_mb": 4}"#, "upload.part_size_mb: must be 5…5120 (S3 parts are 5 MiB to 5 GiB), got 4"),
        (#""scan": {"min_age_seconds": -1}"#, "scan.min_age_seconds: must be 0…604800 (a week), got -1"),
        (#""scan": {"max_age_days": 0}"#, "scan.max_age_days: must be more than 0 and at most 36500, got 0"),
        (#""scan": {"include": ["ok", "[abc"]}"#, "scan.include[1]: unclosed '[' in '[abc'"),
        (
            #""keys": {"template": "{dat}/{relpath}"}"#,
            "keys.template: unknown placeholder {dat}; known: {prefix}, {relpath}, {filename}, {device}, {project}, {source}, {date}"
        ),
        (
            #""keys": {"timezone": "Mars/Olympus"}"#,
            "keys.timezone: unknown time zone 'Mars/Olympus' (use UTC, local, or a name like Asia/Shanghai)"
        ),
        (#""keys": {"first_dir_is_bucket": true}"#, "s3.bucket: must be absent when keys.first_dir_is_bucket is true"),
        (#""device": "car/7""#, "device: must not contain '/'"),
        (#""sources": [{"name": "a", "path": "/a"}]"#, "sources: give either source or sources, not both"),
    ]

    @Test(arguments: validationErrors)
    func validationErrorNamesTheKeyPath(extra: String, expected: String) {
        let error = Self.error { _ = try Self.decodeJSON(extra) }
        #expect(error?.description == expected)
    }

    @Test func invalidBucketIsNamedWithItsReason() {
        let error = Self.error {
            _ = try ConfigLoader.decode(
                Self.json(#"{"project": {"name": "p"}, "s3": {"bucket": "Fleet_Data"}, "source": {"path": "/d"}}"#)
            )
        }
        #expect(error?.description == "s3.bucket: 'Fleet_Data' only lowercase letters, digits, '.' and '-' are allowed")
    }

    @Test func everyProblemIsListed() throws {
        var config = try Self.decodeJSON("")
        config.upload = UploadSettings(workers: 0, multipartThresholdMb: 1, partSizeMb: nil)
        config.project.name = ""
        #expect(
            config.problems().map(\.keyPath) == ["project.name", "upload.workers", "upload.multipart_threshold_mb"]
        )
        #expect(try Self.decodeJSON("").problems().isEmpty)
    }

    @Test func severalSourcesNeedNamesAndTheSourcePlaceholder() {
        let document = #"""
            {"project": {"name": "p"}, "s3": {"bucket": "fleet-data"}, "keys": {"template": "{device}/{relpath}"},
             "sources": [{"name": "ros", "path": "/a"}, {"path": "/b"}]}
            """#
        let error = Self.error { _ = try ConfigLoader.decode(Self.json(document)) }
        #expect(error?.description == "sources[1].name: is required when several sources are listed")
    }

    // MARK: - Overrides

    @Test func environmentVariableNamesFollowTheKeyPath() {
        #expect(ConfigLoader.environmentVariable(for: "upload.workers") == "FLEET_UPLOAD_WORKERS")
        #expect(ConfigLoader.environmentVariable(for: "scan.min_age_seconds") == "FLEET_SCAN_MIN_AGE_SECONDS")
        let overrides = ConfigLoader.environmentOverrides([
            "FLEET_UPLOAD_WORKERS": "8", "FLEET_BOGUS": "1", "HOME": "/root",
        ])
        #expect(overrides == [ConfigOverride(keyPath: "upload.workers", value: "8", origin: "FLEET_UPLOAD_WORKERS")])
    }

    @Test func overrideReplacesTheFileValue() throws {
        let overrides = ConfigLoader.environmentOverrides(["FLEET_UPLOAD_WORKERS": "8", "FLEET_S3_PREFIX": "night"])
        let config = try Self.decodeJSON(#""upload": {"workers": 4}"#, overrides: overrides)
        #expect(config.upload?.workers == 8)
        #expect(config.s3.prefix == "night")
    }

    @Test func laterOverrideWins() throws {
        let overrides = [
            ConfigOverride(keyPath: "upload.workers", value: "8", origin: "FLEET_UPLOAD_WORKERS"),
            ConfigOverride(keyPath: "upload.workers", value: "3", origin: "--workers"),
        ]
        #expect(try Self.decodeYAML("upload:\n  workers: 4\n", overrides: overrides).upload?.workers == 3)
    }

    @Test func invalidOverrideNamesTheEnvironmentVariable() {
        let overrides = ConfigLoader.environmentOverrides(["FLEET_UPLOAD_WORKERS": "0"])
        let error = Self.error { _ = try Self.decodeJSON("", overrides: overrides) }
        #expect(error?.keyPath == "upload.workers")
        #expect(error?.origin == "FLEET_UPLOAD_WORKERS")
        #expect(error?.description == "upload.workers (from FLEET_UPLOAD_WORKERS): must be auto or 1…1024, got 0")
    }

    @Test func overrideThatIsNotANumberNamesItsOrigin() {
        let overrides = [ConfigOverride(keyPath: "upload.workers", value: "many", origin: "--workers")]
        let error = Self.error { _ = try Self.decodeJSON(#""upload": {"workers": 4}"#, overrides: overrides) }
        #expect(error?.description == #"upload.workers (from --workers): expected auto or a whole number, got "many""#)
    }

    @Test(arguments: [
        (
            "s3.endpoint", "--endpoint",
            "s3.endpoint (from --endpoint): is empty; leave the flag out to keep the file's value"
        ),
        ("device", "FLEET_DEVICE", "device (from FLEET_DEVICE): is empty; unset the variable to keep the file's value"),
        ("s3.region", "--region", "s3.region (from --region): is empty; leave the flag out to keep the file's value"),
    ])
    func emptyOverrideIsRefusedInsteadOfDroppingTheFileValue(key: String, origin: String, expected: String) {
        let overrides = [ConfigOverride(keyPath: key, value: " ", origin: origin)]
        let error = Self.error {
            let document = #"""
                {"project": {"name": "p"}, "s3": {"bucket": "fleet-data", "endpoint": "http://127.0.0.1:8333",
                 "region": "eu-west-1"}, "source": {"path": "/data"}}
                """#
            _ = try ConfigLoader.decode(Self.json(document), overrides: overrides)
        }
        #expect(error?.description == expected)
    }

    @Test func fileValueErrorHasNoOrigin() {
        let overrides = ConfigLoader.environmentOverrides(["FLEET_S3_PREFIX": "night"])
        let error = Self.error { _ = try Self.decodeJSON(#""upload": {"workers": 0}"#, overrides: overrides) }
        #expect(error?.origin == nil)
        #expect(error?.description == "upload.workers: must be auto or 1…1024, got 0")
    }

    // MARK: - Loading files

    private static func withTemporaryDirectory(_ body: (URL) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "fleet-config-\(UUID().uuidString)"
        )
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try body(directory)
    }

    @Test func relativeSourcePathsResolveAgainstTheConfigDirectory() throws {
        try Self.withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("agent.yaml")
            try Data(
                """
                project: {name: p}
                s3: {bucket: fleet-data}
                keys: {template: "{source}/{relpath}"}
                sources:
                  - {name: ros, path: logs/ros}
                  - {name: up, path: ../shared/x}
                  - {name: abs, path: /var/log}

                """.utf8
            ).write(to: file)
            let config = try ConfigLoader.load(path: file.path)
            let base = directory.standardizedFileURL.path
            let parent = directory.deletingLastPathComponent().standardizedFileURL.path
            #expect(config.sources?.map(\.path) == [base + "/logs/ros", parent + "/shared/x", "/var/log"])
        }
    }

    @Test func relativeSessionSourceResolvesAgainstTheConfigDirectory() throws {
        try Self.withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("session.json")
            try Data(#"{"project": {"name": "p"}, "s3": {"bucket": "fleet-data"}, "source": {"path": "./data"}}"#.utf8)
                .write(to: file)
            let config = try ConfigLoader.load(path: file.path)
            #expect(config.source?.path == directory.standardizedFileURL.path + "/data")
        }
    }

    @Test func errorFromAFileNamesTheFile() throws {
        try Self.withTemporaryDirectory { directory in
            let file = directory.appendingPathComponent("session.yml")
            try Data((Self.minimalYAML + "upload:\n  workers: 0\n").utf8).write(to: file)
            let error = Self.error { _ = try ConfigLoader.load(path: file.path) }
            #expect(error?.file == file.path)
            #expect(error?.description == "\(file.path): upload.workers: must be auto or 1…1024, got 0")
        }
    }

    @Test func missingFileAndUnknownExtensionAreExplained() throws {
        try Self.withTemporaryDirectory { directory in
            let missing = directory.appendingPathComponent("nope.json").path
            #expect(
                Self.error { _ = try ConfigLoader.load(path: missing) }?.description
                    == "\(missing): cannot read the configuration: no such file"
            )
            let toml = directory.appendingPathComponent("config.toml")
            try Data("x = 1".utf8).write(to: toml)
            #expect(
                Self.error { _ = try ConfigLoader.load(path: toml.path) }?.description
                    == "\(toml.path): unknown file type: name it .json, .yaml or .yml"
            )
        }
    }
}
