import Foundation
import Testing

@testable import FleetAWS

struct SharedConfigFilesTests {
    private static func parse(_ text: String, _ format: SharedConfigFiles.Format) throws -> SharedConfigFiles.File {
        try SharedConfigFiles.File.parse(text, path: "/home/u/.aws/file", format: format)
    }

    private static func error(_ body: () throws -> Void) -> CredentialsError? {
        do {
            try body()
            return nil
        } catch let error as CredentialsError {
            return error
        } catch {
            Issue.record("expected a CredentialsError, got \(error)")
            return nil
        }
    }

    // MARK: - Parsing

    @Test func credentialsFileSectionsAreProfilesByTheirHeader() throws {
        let file = try Self.parse(
            """
            [default]
            aws_access_key_id = AKIADEFAULT
            aws_secret_access_key = secret/default

            [china]
            aws_access_key_id=AKIACHINA
            aws_secret_access_key=secret+china

            """,
            .credentials
        )
        #expect(
            file.profiles == [
                "default": ["aws_access_key_id": "AKIADEFAULT", "aws_secret_access_key": "secret/default"],
                "china": ["aws_access_key_id": "AKIACHINA", "aws_secret_access_key": "secret+china"],
            ]
        )
    }

    @Test func configFileNamesProfilesWithTheProfilePrefix() throws {
        let file = try Self.parse(
            """
            [default]
            region = us-east-1
            [profile china]
            region = cn-north-1
            [profile   "two words"]
            region = eu-west-1
            [sso-session corp]
            sso_region = us-east-1
            [bare]
            region = ap-south-1
            [services dev]
            s3 =
              endpoint_url = http://localhost:9000

            """,
            .config
        )
        #expect(
            file.profiles == [
                "default": ["region": "us-east-1"],
                "china": ["region": "cn-north-1"],
                "two words": ["region": "eu-west-1"],
            ]
        )
        #expect(file.otherSections == ["sso-session corp", "bare", "services dev"])
    }

    @Test func profileDefaultInTheConfigFileIsTheDefaultProfile() throws {
        let file = try Self.parse("[profile default]\nregion = eu-central-1\n", .config)
        #expect(file.profiles == ["default": ["region": "eu-central-1"]])
    }

    @Test func profilePrefixInTheCredentialsFileIsPartOfTheName() throws {
        let file = try Self.parse("[profile china]\naws_access_key_id = AKIA\n", .credentials)
        #expect(file.profiles.keys.sorted() == ["profile china"])
    }

    @Test func keysAreCaseInsensitiveAndProfileNamesAreNot() throws {
        let file = try Self.parse("[China]\nAWS_Access_Key_ID = AKIA\nRegion: cn-north-1\n", .credentials)
        #expect(file.profiles == ["China": ["aws_access_key_id": "AKIA", "region": "cn-north-1"]])
    }

    @Test func commentsBlankLinesAndSurroundingWhitespaceAreIgnored() throws {
        let file = try Self.parse(
            "\u{FEFF}# top comment\r\n; another\r\n[default]   \r\n\t# indented comment\r\n"
                + "   aws_access_key_id   =   AKIA   \r\n\r\naws_secret_access_key=s#not-a-comment;either\r\n",
            .credentials
        )
        #expect(
            file.profiles == [
                "default": ["aws_access_key_id": "AKIA", "aws_secret_access_key": "s#not-a-comment;either"]
            ]
        )
    }

    @Test func valuesKeepEverythingAfterTheFirstDelimiter() throws {
        let file = try Self.parse(
            "[default]\naws_session_token = FwoG+ab/cd==\nrole_arn = arn:aws:iam::1:role/x\n",
            .config
        )
        #expect(file.profiles["default"] == ["aws_session_token": "FwoG+ab/cd==", "role_arn": "arn:aws:iam::1:role/x"])
    }

    @Test func nestedSubSectionsAreSkipped() throws {
        let file = try Self.parse(
            """
            [default]
            region = us-west-2
            s3 =
              max_concurrent_requests = 20
              aws_access_key_id = NESTED
            output = json
            [profile china]
            region = cn-north-1

            """,
            .config
        )
        #expect(file.profiles["default"] == ["region": "us-west-2", "s3": "", "output": "json"])
        #expect(file.profiles["china"] == ["region": "cn-north-1"])
    }

    @Test func emptySectionIsStillAProfile() throws {
        let file = try Self.parse("[empty]\n", .credentials)
        #expect(file.profiles == ["empty": [:]])
    }

    @Test(arguments: [
        ("aws_access_key_id = AKIA\n[default]\n", "line 1: a setting before the first [section]"),
        ("[default]\naws_secret_access_key wJalrXUtnFEMI\n", "line 2: expected `key = value`"),
        ("[default\n", "line 1: `[` without a closing `]`"),
        ("[default]\n = value\n", "line 2: a setting with no name"),
    ])
    func malformedLinesAreReportedByNumberWithoutTheirContent(text: String, problem: String) {
        let error = Self.error { _ = try Self.parse(text, .credentials) }
        #expect(error?.kind == .malformedFile)
        #expect(error?.message == "/home/u/.aws/file \(problem)")
        #expect(error?.description.contains("wJalr") == false)
    }

    // MARK: - Files

    @Test func missingFileHasNoProfiles() throws {
        let file = try SharedConfigFiles.File.load(path: "/nonexistent/\(UUID().uuidString)", format: .config)
        #expect(!file.exists)
        #expect(file.profiles.isEmpty)
    }

    @Test func directoryInPlaceOfAFileIsAnError() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-aws-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let error = Self.error { _ = try SharedConfigFiles.File.load(path: directory.path, format: .credentials) }
        #expect(error?.kind == .unreadableFile)
        #expect(error?.message == "\(directory.path) is a directory")
    }

    @Test func pathsDefaultToTheHomeDirectoryAndFollowTheEnvironment() {
        #expect(
            SharedConfigFiles.credentialsPath(environment: [:], homeDirectory: "/home/u") == "/home/u/.aws/credentials"
        )
        #expect(SharedConfigFiles.configPath(environment: [:], homeDirectory: "/home/u/") == "/home/u/.aws/config")
        let environment = ["AWS_SHARED_CREDENTIALS_FILE": "~/keys/aws", "AWS_CONFIG_FILE": "/etc/fleet/aws-config"]
        #expect(
            SharedConfigFiles.credentialsPath(environment: environment, homeDirectory: "/home/u") == "/home/u/keys/aws"
        )
        #expect(
            SharedConfigFiles.configPath(environment: environment, homeDirectory: "/home/u") == "/etc/fleet/aws-config"
        )
        #expect(
            SharedConfigFiles.configPath(environment: ["AWS_CONFIG_FILE": ""], homeDirectory: "/h") == "/h/.aws/config"
        )
    }

    // MARK: - Credentials from profiles

    @Test func credentialsFileKeysComeBeforeTheConfigFiles() throws {
        let files = SharedConfigFiles(
            credentials: .init(
                path: "/c",
                format: .credentials,
                profiles: ["p": ["aws_access_key_id": "FROMCRED", "aws_secret_access_key": "s1"]]
            ),
            config: .init(
                path: "/f",
                format: .config,
                profiles: ["p": ["aws_access_key_id": "FROMCONF", "aws_secret_access_key": "s2"]]
            )
        )
        let credentials = try files.credentials(forProfile: "p")
        #expect(credentials?.accessKeyID == "FROMCRED")
        #expect(credentials?.source == "shared credentials file /c [p]")
    }

    @Test func halfAKeyPairInAProfileIsAnErrorNamingTheMissingKey() {
        let files = SharedConfigFiles(
            credentials: .init(path: "/c", format: .credentials),
            config: .init(path: "/f", format: .config, profiles: ["p": ["aws_secret_access_key": "wJalrSECRET"]])
        )
        let error = Self.error { _ = try files.credentials(forProfile: "p") }
        #expect(error?.kind == .incomplete)
        #expect(error?.message == "/f [profile p] has aws_secret_access_key but no aws_access_key_id")
        #expect(error?.hint == "add aws_access_key_id to that section or run `aws configure --profile p`")
        #expect(error?.description.contains("wJalrSECRET") == false)
    }

    @Test func profileWithoutKeysHasNoCredentials() throws {
        let files = SharedConfigFiles(
            credentials: .init(path: "/c", format: .credentials),
            config: .init(path: "/f", format: .config, profiles: ["default": ["region": "eu-west-1"]])
        )
        #expect(try files.credentials(forProfile: "default") == nil)
        #expect(try files.credentials(forProfile: "absent") == nil)
    }
}
