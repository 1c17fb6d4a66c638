import Foundation
import Synchronization

/// Finds AWS credentials the way the AWS CLI does, without an AWS SDK.
///
/// The order:
/// 1. An explicitly configured profile (`s3.profile`): that profile from the shared files, or an error. The
///    environment's keys are not consulted, as with `aws --profile`.
/// 2. `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, with `AWS_SESSION_TOKEN` if set.
/// 3. The profile named by `AWS_PROFILE` (else `default`): the credentials file, then the config file. A profile
///    `AWS_PROFILE` names must exist.
/// 4. The EC2 instance role, through the `instanceRole` closure, unless `AWS_EC2_METADATA_DISABLED=true`.
///
/// Profiles that assume a role, run a `credential_process` or use SSO are refused with an error rather than
/// passed over, so that a later source's credentials are never used in their place.
package struct CredentialChain: Sendable {
    /// The configured profile (`s3.profile`); `nil` or empty when none was configured.
    package var profile: String?
    package var environment: [String: String]
    package var homeDirectory: String
    /// Fetches the instance role's credentials (IMDSv2); returns `nil` when there is no metadata service.
    package var instanceRole: @Sendable () throws -> AWSCredentials?

    /// - Parameters:
    ///   - profile: The configured profile (`s3.profile`), if any.
    ///   - environment: The process environment, normally `ProcessInfo.processInfo.environment`.
    ///   - homeDirectory: Where `~/.aws` is.
    ///   - instanceRole: Fetches the EC2 instance role's credentials, or returns `nil` when there is no metadata
    ///     service; called last.
    package init(
        profile: String?,
        environment: [String: String],
        homeDirectory: String,
        instanceRole: @escaping @Sendable () throws -> AWSCredentials?
    ) {
        self.profile = profile
        self.environment = environment
        self.homeDirectory = homeDirectory
        self.instanceRole = instanceRole
    }

    // MARK: - Resolving

    /// Goes through the sources in order and returns the first credentials found.
    ///
    /// - Returns: Credentials whose `source` says where they came from.
    /// - Throws: `CredentialsError` when a source is present but unusable (half a key pair, a named profile that
    ///   does not exist, an unreadable file) or when no source has credentials; whatever `instanceRole` throws.
    package func resolve() throws -> AWSCredentials {
        if let profile = configuredProfile {
            return try credentials(forConfiguredProfile: profile)
        }
        if let credentials = try environmentCredentials() {
            return credentials
        }
        let files = try SharedConfigFiles(environment: environment, homeDirectory: homeDirectory)
        let profile = environmentProfile ?? "default"
        if environmentProfile != nil {
            guard files.hasProfile(profile) else { throw Self.profileNotFound(profile, "AWS_PROFILE", in: files) }
        }
        if let credentials = try files.credentials(forProfile: profile) {
            return credentials
        }
        if let (key, file) = files.unsupportedSetting(forProfile: profile) {
            throw Self.unsupported(profile, key: key, in: file)
        }

        var tried = ["AWS_ACCESS_KEY_ID"]
        for file in [files.credentials, files.config] {
            tried.append("\(file.path) \(file.header(for: profile))\(file.exists ? "" : " (no such file)")")
        }
        if metadataDisabled {
            tried.append("EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED)")
        } else {
            if let credentials = try instanceRole() {
                return credentials
            }
            tried.append("EC2 instance metadata")
        }
        throw CredentialsError(
            .notFound,
            "no AWS credentials found: tried " + tried.joined(separator: ", "),
            hint: "run `aws configure\(SharedConfigFiles.profileFlag(profile))` "
                + "or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    }

    /// The `region` of the active profile (the configured one, else `AWS_PROFILE`, else `default`) in the config
    /// file, for when the fleet configuration gives none.
    ///
    /// - Returns: The region, or `nil` when the config file is missing, unreadable or has none for the profile.
    package func regionFromSharedConfig() -> String? {
        guard let files = try? SharedConfigFiles(environment: environment, homeDirectory: homeDirectory) else {
            return nil
        }
        let region = files.config.profiles[configuredProfile ?? environmentProfile ?? "default"]?["region"]
        return region.flatMap { $0.isEmpty ? nil : $0 }
    }

    // MARK: - Sources

    private var configuredProfile: String? { profile.flatMap { $0.isEmpty ? nil : $0 } }
    private var environmentProfile: String? { nonEmptyVariable("AWS_PROFILE") }
    private var metadataDisabled: Bool { environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true" }

    private func nonEmptyVariable(_ name: String) -> String? {
        let value = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines)
        return value?.isEmpty == false ? value : nil
    }

    /// Step 1: the profile must exist and hold a key pair.
    private func credentials(forConfiguredProfile profile: String) throws -> AWSCredentials {
        let files = try SharedConfigFiles(environment: environment, homeDirectory: homeDirectory)
        guard files.hasProfile(profile) else { throw Self.profileNotFound(profile, nil, in: files) }
        if let credentials = try files.credentials(forProfile: profile) {
            return credentials
        }
        if let (key, file) = files.unsupportedSetting(forProfile: profile) {
            throw Self.unsupported(profile, key: key, in: file)
        }
        let paths = [files.credentials, files.config].filter { $0.profiles[profile] != nil }.map(\.path)
        throw CredentialsError(
            .incomplete,
            "AWS profile \"\(profile)\" in \(paths.joined(separator: " and ")) has no aws_access_key_id",
            hint: "run `aws configure --profile \(profile)`"
        )
    }

    /// Step 2: both variables or neither.
    private func environmentCredentials() throws -> AWSCredentials? {
        let keyID = nonEmptyVariable("AWS_ACCESS_KEY_ID")
        let secret = nonEmptyVariable("AWS_SECRET_ACCESS_KEY")
        switch (keyID, secret) {
        case (let keyID?, let secret?):
            return AWSCredentials(
                accessKeyID: keyID,
                secretAccessKey: secret,
                sessionToken: nonEmptyVariable("AWS_SESSION_TOKEN"),
                source: "environment"
            )
        case (nil, nil):
            return nil
        case (_?, nil), (nil, _?):
            let (present, missing) =
                keyID == nil
                ? ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID") : ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            throw CredentialsError(
                .incomplete,
                "\(present) is set but \(missing) is not",
                hint: "set \(missing) too, or unset \(present) to use the shared credentials file"
            )
        }
    }

    // MARK: - Errors

    private static func profileNotFound(
        _ profile: String,
        _ origin: String?,
        in files: SharedConfigFiles
    )
        -> CredentialsError
    {
        let from = origin.map { " (from \($0))" } ?? ""
        let message =
            "AWS profile \"\(profile)\"\(from) not found in \(files.credentials.path) or \(files.config.path)"
        if files.config.otherSections.contains(profile) {
            return CredentialsError(
                .profileNotFound,
                message,
                hint: "in \(files.config.path) write the section as [profile \(profile)], not [\(profile)]"
            )
        }
        return CredentialsError(.profileNotFound, message, hint: "run `aws configure --profile \(profile)`")
    }

    private static func unsupported(
        _ profile: String,
        key: String,
        in file: SharedConfigFiles.File
    )
        -> CredentialsError
    {
        CredentialsError(
            .unsupportedProfile,
            "AWS profile \"\(profile)\" in \(file.path) uses \(key), which fleet-upload does not support",
            hint: "give the profile aws_access_key_id/aws_secret_access_key, or export the credentials "
                + "(`aws configure export-credentials --profile \(profile) --format env`)"
        )
    }
}

// MARK: - Errors

/// Why no usable AWS credentials were found.
///
/// `description` is one line, `message; hint`: "no AWS credentials found: tried AWS_ACCESS_KEY_ID, …; run
/// `aws configure` or set …". It names variables, files and profiles, never a key, secret or token.
package struct CredentialsError: Error, CustomStringConvertible, Sendable, Equatable {
    package enum Kind: String, Sendable {
        /// No source had credentials.
        case notFound
        /// Half a key pair: in the environment, or in a profile.
        case incomplete
        /// A profile named by `s3.profile` or `AWS_PROFILE` is in neither shared file.
        case profileNotFound
        /// The profile assumes a role, runs a process or uses SSO.
        case unsupportedProfile
        /// A shared file exists but cannot be read.
        case unreadableFile
        /// A shared file cannot be parsed.
        case malformedFile
    }

    package var kind: Kind
    /// What is wrong.
    package var message: String
    /// What to do about it.
    package var hint: String

    package init(_ kind: Kind, _ message: String, hint: String) {
        self.kind = kind
        self.message = message
        self.hint = hint
    }

    package var description: String { "\(message); \(hint)" }
}

// MARK: - Caching

/// Resolves credentials once and hands out the cached ones until they are about to expire.
///
/// Credentials with an `expiration` are resolved again once they are within `refreshMargin` of it. If that fails
/// while the cached ones have not yet expired, the cached ones are returned and the next call tries again. Callers
/// use `invalidate()` after S3 answers `ExpiredToken`. Resolution happens under the lock, so concurrent workers
/// wait for one resolution rather than each making their own.
package final class CredentialProvider: Sendable {
    private let chain: CredentialChain
    private let refreshMargin: TimeInterval
    private let now: @Sendable () -> Date
    private let cached = Mutex<AWSCredentials?>(nil)

    /// - Parameters:
    ///   - chain: Where credentials come from.
    ///   - refreshMargin: How long before `expiration` to resolve again, in seconds; default 5 minutes.
    ///   - now: The clock.
    package init(
        chain: CredentialChain,
        refreshMargin: TimeInterval = 300,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.chain = chain
        self.refreshMargin = refreshMargin
        self.now = now
    }

    /// The cached credentials, resolved first if there are none or they expire within the margin.
    ///
    /// - Throws: What `CredentialChain.resolve()` throws, unless cached credentials are still valid.
    package func credentials() throws -> AWSCredentials {
        try cached.withLock { cached in
            let time = now()
            if let current = cached, !needsRefresh(current, at: time) {
                return current
            }
            do {
                let fresh = try chain.resolve()
                cached = fresh
                return fresh
            } catch {
                if let current = cached, let expiration = current.expiration, expiration > time {
                    return current
                }
                throw error
            }
        }
    }

    /// Drops the cached credentials so that the next `credentials()` resolves again.
    package func invalidate() {
        cached.withLock { $0 = nil }
    }

    private func needsRefresh(_ credentials: AWSCredentials, at time: Date) -> Bool {
        guard let expiration = credentials.expiration else { return false }
        return expiration.timeIntervalSince(time) <= refreshMargin
    }
}
