import Foundation
import Synchronization
import Testing

@testable import FleetAWS

struct CredentialChainTests {
    /// A throwaway home directory with files written under it.
    private struct Home {
        let path: String

        func write(_ relative: String, _ text: String) throws {
            let url = URL(fileURLWithPath: path).appendingPathComponent(relative)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(),
                withIntermediateDirectories: true
            )
            try Data(text.utf8).write(to: url)
        }
    }

    private static func withHome(_ body: (Home) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-aws-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try body(Home(path: directory.path))
    }

    /// An instance-role closure that counts its calls and answers from a script.
    private final class InstanceRole: Sendable {
        private let calls = Mutex(0)
        private let answer: @Sendable (Int) throws -> AWSCredentials?

        init(_ answer: @escaping @Sendable (Int) throws -> AWSCredentials? = { _ in nil }) { self.answer = answer }

        var callCount: Int { calls.withLock { $0 } }

        func fetch() throws -> AWSCredentials? {
            let call = calls.withLock { count in
                count += 1
                return count
            }
            return try answer(call)
        }
    }

    private final class Clock: Sendable {
        private let current = Mutex(Date(timeIntervalSince1970: 1_700_000_000))
        var now: Date { current.withLock { $0 } }
        func advance(minutes: Double) { current.withLock { $0 += minutes * 60 } }
    }

    private struct MetadataDown: Error {}

    private static func chain(
        profile: String? = nil,
        _ environment: [String: String] = [:],
        home: Home,
        role: InstanceRole = InstanceRole()
    ) -> CredentialChain {
        CredentialChain(profile: profile, environment: environment, homeDirectory: home.path, instanceRole: role.fetch)
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

    private static let environmentKeys = ["AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "envSECRET"]

    private static let credentialsFile = """
        [default]
        aws_access_key_id = AKIADEFAULT
        aws_secret_access_key = defaultSECRET

        [china]
        aws_access_key_id = AKIACHINA
        aws_secret_access_key = chinaSECRET

        """

    // MARK: - Precedence

    @Test func configuredProfileBeatsEnvironmentKeys() throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", Self.credentialsFile)
            let credentials = try Self.chain(profile: "china", Self.environmentKeys, home: home).resolve()
            #expect(credentials.accessKeyID == "AKIACHINA")
            #expect(credentials.secretAccessKey == "chinaSECRET")
            #expect(credentials.source == "shared credentials file \(home.path)/.aws/credentials [china]")
        }
    }

    @Test func environmentKeysBeatSharedFilesAndCarryTheSessionToken() throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", Self.credentialsFile)
            var environment = Self.environmentKeys
            environment["AWS_SESSION_TOKEN"] = "envTOKEN"
            environment["AWS_PROFILE"] = "china"
            let credentials = try Self.chain(environment, home: home).resolve()
            #expect(
                credentials
                    == AWSCredentials(
                        accessKeyID: "AKIAENV",
                        secretAccessKey: "envSECRET",
                        sessionToken: "envTOKEN",
                        source: "environment"
                    )
            )
        }
    }

    @Test func emptyEnvironmentVariablesCountAsUnset() throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", Self.credentialsFile)
            let environment = ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": ""]
            #expect(try Self.chain(profile: "", environment, home: home).resolve().accessKeyID == "AKIADEFAULT")
        }
    }

    @Test func defaultProfileIsUsedWithoutAWSProfile() throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", Self.credentialsFile)
            let credentials = try Self.chain(home: home).resolve()
            #expect(credentials.accessKeyID == "AKIADEFAULT")
            #expect(credentials.sessionToken == nil)
            #expect(credentials.source == "shared credentials file \(home.path)/.aws/credentials [default]")
        }
    }

    @Test func awsProfileSelectsTheProfile() throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", Self.credentialsFile)
            #expect(try Self.chain(["AWS_PROFILE": "china"], home: home).resolve().accessKeyID == "AKIACHINA")
        }
    }

    @Test func fileLocationsFollowTheEnvironment() throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", Self.credentialsFile)
            try home.write(
                ".aws/config",
                "[profile ci]\naws_access_key_id = AKIAHOMECONFIG\naws_secret_access_key = s\n"
            )
            try home.write("elsewhere/creds", "[default]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = s\n")
            try home.write(
                "elsewhere/conf",
                "[profile ci]\naws_access_key_id = AKIAOTHERCONFIG\naws_secret_access_key = s\n"
            )
            let environment = [
                "AWS_SHARED_CREDENTIALS_FILE": "\(home.path)/elsewhere/creds",
                "AWS_CONFIG_FILE": "\(home.path)/elsewhere/conf",
            ]
            let fromCredentials = try Self.chain(environment, home: home).resolve()
            #expect(fromCredentials.accessKeyID == "AKIAOTHER")
            #expect(fromCredentials.source == "shared credentials file \(home.path)/elsewhere/creds [default]")

            let fromConfig = try Self.chain(profile: "ci", environment, home: home).resolve()
            #expect(fromConfig.accessKeyID == "AKIAOTHERCONFIG")
            #expect(fromConfig.source == "shared config file \(home.path)/elsewhere/conf [ci]")
        }
    }

    @Test func credentialsFileBeatsConfigFileForTheSameProfile() throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", Self.credentialsFile)
            try home.write(
                ".aws/config",
                "[profile china]\nregion = cn-north-1\naws_access_key_id = AKIACONFIG\naws_secret_access_key = s\n"
            )
            #expect(try Self.chain(["AWS_PROFILE": "china"], home: home).resolve().accessKeyID == "AKIACHINA")
        }
    }

    @Test func configFileProfileFormSuppliesKeysAndSessionToken() throws {
        try Self.withHome { home in
            try home.write(
                ".aws/config",
                """
                [default]
                region = us-east-1

                [profile ci]
                aws_access_key_id = AKIACI
                aws_secret_access_key = ciSECRET
                aws_session_token = ciTOKEN

                """
            )
            let credentials = try Self.chain(["AWS_PROFILE": "ci"], home: home).resolve()
            #expect(
                credentials
                    == AWSCredentials(
                        accessKeyID: "AKIACI",
                        secretAccessKey: "ciSECRET",
                        sessionToken: "ciTOKEN",
                        source: "shared config file \(home.path)/.aws/config [ci]"
                    )
            )
        }
    }

    // MARK: - Errors

    @Test(arguments: [
        (["AWS_ACCESS_KEY_ID": "AKIAENV"], "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"),
        (["AWS_SECRET_ACCESS_KEY": "envSECRET"], "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"),
    ])
    func halfAnEnvironmentPairIsAnErrorNamingTheMissingVariable(environment: [String: String], message: String) throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", Self.credentialsFile)
            let error = Self.error { _ = try Self.chain(environment, home: home).resolve() }
            #expect(error?.kind == .incomplete)
            #expect(error?.message == message)
            #expect(error?.description.contains("envSECRET") == false)
        }
    }

    @Test func missingConfiguredProfileIsAnErrorEvenWithEnvironmentKeys() throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", Self.credentialsFile)
            let role = InstanceRole { _ in AWSCredentials(accessKeyID: "AKIAROLE", secretAccessKey: "s", source: "role")
            }
            let error = Self.error {
                _ = try Self.chain(profile: "staging", Self.environmentKeys, home: home, role: role).resolve()
            }
            #expect(error?.kind == .profileNotFound)
            #expect(
                error?.description
                    == "AWS profile \"staging\" not found in \(home.path)/.aws/credentials or \(home.path)/.aws/config; "
                    + "run `aws configure --profile staging`"
            )
            #expect(role.callCount == 0)
        }
    }

    @Test func configuredProfileWithoutKeysIsAnErrorAndDoesNotFallThrough() throws {
        try Self.withHome { home in
            try home.write(".aws/config", "[profile china]\nregion = cn-north-1\n")
            let role = InstanceRole { _ in AWSCredentials(accessKeyID: "AKIAROLE", secretAccessKey: "s", source: "role")
            }
            let error = Self.error { _ = try Self.chain(profile: "china", home: home, role: role).resolve() }
            #expect(error?.kind == .incomplete)
            #expect(
                error?.description
                    == "AWS profile \"china\" in \(home.path)/.aws/config has no aws_access_key_id; "
                    + "run `aws configure --profile china`"
            )
            #expect(role.callCount == 0)
        }
    }

    @Test func missingAWSProfileIsAnError() throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", Self.credentialsFile)
            let error = Self.error { _ = try Self.chain(["AWS_PROFILE": "staging"], home: home).resolve() }
            #expect(error?.kind == .profileNotFound)
            #expect(
                error?.message
                    == "AWS profile \"staging\" (from AWS_PROFILE) not found in \(home.path)/.aws/credentials or "
                    + "\(home.path)/.aws/config"
            )
        }
    }

    @Test func profileWrittenWithoutThePrefixInTheConfigFileGetsAHint() throws {
        try Self.withHome { home in
            try home.write(".aws/config", "[china]\nregion = cn-north-1\n")
            let error = Self.error { _ = try Self.chain(profile: "china", home: home).resolve() }
            #expect(error?.kind == .profileNotFound)
            #expect(error?.hint == "in \(home.path)/.aws/config write the section as [profile china], not [china]")
        }
    }

    @Test func roleProfileIsRefusedRatherThanPassedOver() throws {
        try Self.withHome { home in
            try home.write(".aws/config", "[default]\nrole_arn = arn:aws:iam::1:role/up\nsource_profile = base\n")
            let role = InstanceRole { _ in AWSCredentials(accessKeyID: "AKIAROLE", secretAccessKey: "s", source: "role")
            }
            let error = Self.error { _ = try Self.chain(home: home, role: role).resolve() }
            #expect(error?.kind == .unsupportedProfile)
            #expect(
                error?.message
                    == "AWS profile \"default\" in \(home.path)/.aws/config uses role_arn, which fleet-upload does not support"
            )
            #expect(role.callCount == 0)
        }
    }

    @Test func nothingFoundListsWhatWasTriedWithoutSecrets() throws {
        try Self.withHome { home in
            try home.write(
                ".aws/credentials",
                "[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = otherSECRET\n"
            )
            let role = InstanceRole()
            let error = Self.error {
                _ = try Self.chain(["AWS_SESSION_TOKEN": "strayTOKEN"], home: home, role: role).resolve()
            }
            #expect(error?.kind == .notFound)
            #expect(
                error?.description
                    == "no AWS credentials found: tried AWS_ACCESS_KEY_ID, \(home.path)/.aws/credentials [default], "
                    + "\(home.path)/.aws/config [default] (no such file), EC2 instance metadata; "
                    + "run `aws configure` or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            )
            #expect(error?.description.contains("otherSECRET") == false)
            #expect(error?.description.contains("strayTOKEN") == false)
            #expect(role.callCount == 1)
        }
    }

    @Test func nothingFoundForANamedProfileSuggestsConfiguringThatProfile() throws {
        try Self.withHome { home in
            try home.write(".aws/config", "[profile ci]\nregion = eu-west-1\n")
            let error = Self.error { _ = try Self.chain(["AWS_PROFILE": "ci"], home: home).resolve() }
            #expect(error?.kind == .notFound)
            #expect(
                error?.message
                    == "no AWS credentials found: tried AWS_ACCESS_KEY_ID, \(home.path)/.aws/credentials [ci] "
                    + "(no such file), \(home.path)/.aws/config [profile ci], EC2 instance metadata"
            )
            #expect(
                error?.hint == "run `aws configure --profile ci` or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            )
        }
    }

    @Test func malformedCredentialsFileIsAnError() throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", "[default]\naws_secret_access_key wJalrSECRET\n")
            let error = Self.error { _ = try Self.chain(home: home).resolve() }
            #expect(error?.kind == .malformedFile)
            #expect(error?.message == "\(home.path)/.aws/credentials line 2: expected `key = value`")
            #expect(error?.description.contains("wJalrSECRET") == false)
        }
    }

    // MARK: - Instance role

    @Test func instanceRoleIsUsedLast() throws {
        try Self.withHome { home in
            try home.write(".aws/config", "[default]\nregion = us-east-1\n")
            let role = InstanceRole { _ in
                AWSCredentials(
                    accessKeyID: "ASIAROLE",
                    secretAccessKey: "s",
                    sessionToken: "t",
                    expiration: Date(timeIntervalSince1970: 1_800_000_000),
                    source: "EC2 instance role web-uploader"
                )
            }
            let credentials = try Self.chain(home: home, role: role).resolve()
            #expect(credentials.source == "EC2 instance role web-uploader")
            #expect(credentials.sessionToken == "t")

            try home.write(".aws/credentials", Self.credentialsFile)
            #expect(try Self.chain(home: home, role: role).resolve().accessKeyID == "AKIADEFAULT")
            #expect(try Self.chain(Self.environmentKeys, home: home, role: role).resolve().accessKeyID == "AKIAENV")
            #expect(role.callCount == 1)
        }
    }

    @Test(arguments: ["true", "TRUE", "True"])
    func instanceRoleIsSkippedWhenMetadataIsDisabled(value: String) throws {
        try Self.withHome { home in
            let role = InstanceRole { _ in AWSCredentials(accessKeyID: "AKIAROLE", secretAccessKey: "s", source: "role")
            }
            let error = Self.error {
                _ = try Self.chain(["AWS_EC2_METADATA_DISABLED": value], home: home, role: role).resolve()
            }
            #expect(error?.kind == .notFound)
            #expect(error?.message.hasSuffix(", EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED)") == true)
            #expect(role.callCount == 0)
        }
    }

    @Test func instanceRoleErrorsPropagate() throws {
        try Self.withHome { home in
            let role = InstanceRole { _ in throw MetadataDown() }
            #expect(throws: MetadataDown.self) { try Self.chain(home: home, role: role).resolve() }
        }
    }

    // MARK: - Region

    @Test func regionComesFromTheActiveProfileInTheConfigFile() throws {
        try Self.withHome { home in
            try home.write(".aws/credentials", "[default]\nregion = ignored-1\n[other]\nregion = ignored-2\n")
            try home.write(".aws/config", "[default]\nregion = us-west-2\n[profile china]\nregion = cn-north-1\n")
            #expect(Self.chain(home: home).regionFromSharedConfig() == "us-west-2")
            #expect(Self.chain(["AWS_PROFILE": "china"], home: home).regionFromSharedConfig() == "cn-north-1")
            #expect(
                Self.chain(profile: "china", ["AWS_PROFILE": "x"], home: home).regionFromSharedConfig() == "cn-north-1"
            )
            #expect(Self.chain(profile: "other", home: home).regionFromSharedConfig() == nil)
        }
    }

    @Test func regionIsNilWithoutAConfigFile() throws {
        try Self.withHome { home in
            #expect(Self.chain(home: home).regionFromSharedConfig() == nil)
        }
    }

    // MARK: - Caching

    private static func expiringRole(clock: Clock, lifetimeMinutes: Double = 60) -> InstanceRole {
        InstanceRole { call in
            AWSCredentials(
                accessKeyID: "ASIAROLE\(call)",
                secretAccessKey: "s",
                sessionToken: "t",
                expiration: clock.now.addingTimeInterval(lifetimeMinutes * 60),
                source: "EC2 instance role"
            )
        }
    }

    @Test func providerCachesUntilFiveMinutesBeforeExpiry() throws {
        try Self.withHome { home throws in
            let clock = Clock()
            let role = Self.expiringRole(clock: clock)
            let provider = CredentialProvider(chain: Self.chain(home: home, role: role), now: { clock.now })
            #expect(try provider.credentials().accessKeyID == "ASIAROLE1")
            clock.advance(minutes: 54)
            #expect(try provider.credentials().accessKeyID == "ASIAROLE1")
            #expect(role.callCount == 1)
            clock.advance(minutes: 1.5)
            #expect(try provider.credentials().accessKeyID == "ASIAROLE2")
            #expect(try provider.credentials().accessKeyID == "ASIAROLE2")
            #expect(role.callCount == 2)
        }
    }

    @Test func refreshMarginIsConfigurable() throws {
        try Self.withHome { home in
            let clock = Clock()
            let role = Self.expiringRole(clock: clock)
            let provider = CredentialProvider(
                chain: Self.chain(home: home, role: role),
                refreshMargin: 60,
                now: { clock.now }
            )
            _ = try provider.credentials()
            clock.advance(minutes: 58)
            #expect(try provider.credentials().accessKeyID == "ASIAROLE1")
            clock.advance(minutes: 1.5)
            #expect(try provider.credentials().accessKeyID == "ASIAROLE2")
        }
    }

    @Test func credentialsWithoutExpirationAreNeverRefreshed() throws {
        try Self.withHome { home in
            let clock = Clock()
            let role = InstanceRole { call in
                AWSCredentials(accessKeyID: "AKIA\(call)", secretAccessKey: "s", source: "r")
            }
            let provider = CredentialProvider(chain: Self.chain(home: home, role: role), now: { clock.now })
            _ = try provider.credentials()
            clock.advance(minutes: 60 * 24 * 365)
            #expect(try provider.credentials().accessKeyID == "AKIA1")
            #expect(role.callCount == 1)
        }
    }

    @Test func invalidateForcesResolution() throws {
        try Self.withHome { home throws in
            let clock = Clock()
            let role = Self.expiringRole(clock: clock)
            let provider = CredentialProvider(chain: Self.chain(home: home, role: role), now: { clock.now })
            #expect(try provider.credentials().accessKeyID == "ASIAROLE1")
            provider.invalidate()
            #expect(try provider.credentials().accessKeyID == "ASIAROLE2")
            #expect(role.callCount == 2)
        }
    }

    @Test func failedRefreshKeepsCachedCredentialsUntilTheyExpire() throws {
        try Self.withHome { home in
            let clock = Clock()
            let role = InstanceRole { call in
                guard call == 1 else { throw MetadataDown() }
                return AWSCredentials(
                    accessKeyID: "ASIAROLE1",
                    secretAccessKey: "s",
                    expiration: clock.now.addingTimeInterval(3600),
                    source: "EC2 instance role"
                )
            }
            let provider = CredentialProvider(chain: Self.chain(home: home, role: role), now: { clock.now })
            _ = try provider.credentials()
            clock.advance(minutes: 57)
            #expect(try provider.credentials().accessKeyID == "ASIAROLE1")
            #expect(role.callCount == 2)
            clock.advance(minutes: 3)
            #expect(throws: MetadataDown.self) { try provider.credentials() }
        }
    }

    @Test func invalidatedProviderReportsResolutionErrors() throws {
        try Self.withHome { home in
            let clock = Clock()
            let role = InstanceRole { call in
                guard call == 1 else { throw MetadataDown() }
                return AWSCredentials(
                    accessKeyID: "ASIAROLE1",
                    secretAccessKey: "s",
                    expiration: clock.now.addingTimeInterval(3600),
                    source: "EC2 instance role"
                )
            }
            let provider = CredentialProvider(chain: Self.chain(home: home, role: role), now: { clock.now })
            _ = try provider.credentials()
            provider.invalidate()
            #expect(throws: MetadataDown.self) { try provider.credentials() }
        }
    }
}
