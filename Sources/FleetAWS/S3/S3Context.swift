import FleetSystem
import Foundation
import Logging

/// Everything workers need to build their own `S3Client`: the resolved endpoint and one shared credential
/// provider (credentials are resolved once and refreshed before they expire).
package struct S3Context: Sendable {
    package var endpoint: S3Endpoint
    package var credentials: CredentialProvider
    package var chain: CredentialChain
    /// The signing time every client of this context shares: once S3 says the local clock is off, all
    /// workers sign with the server's time. By default the process's one clock, so a later session of the
    /// same process (the agent's next run) starts with the offset already learned.
    package var clock = SigningClock.process
    /// The cap on upload bandwidth every client of this context shares (`upload.max_bandwidth`); nil for none.
    package var bandwidth: BandwidthLimiter?

    /// Resolves region, endpoint and the credentials chain from the settings and the environment.
    ///
    /// - Parameters:
    ///   - region: The configured region (`s3.region`); `nil` resolves it as `region(configured:…)` says.
    ///   - endpoint: A custom endpoint URL (`s3.endpoint`); `nil` for AWS.
    ///   - pathStyle: Path-style addressing (`s3.path_style`); `nil` chooses by endpoint.
    ///   - profile: The shared-files profile (`s3.profile`); `nil` for `AWS_PROFILE` or `default`.
    ///   - caBundle: A PEM file of certificate authorities to trust (`s3.ca_bundle`); `nil` for
    ///     `AWS_CA_BUNDLE`, else the system's.
    /// - Throws: `ConfigError` for an endpoint that cannot be used, or a CA bundle that cannot be read.
    package init(
        region configured: String?,
        endpoint: String?,
        pathStyle: Bool?,
        profile: String?,
        caBundle: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        homeDirectory: String = NSHomeDirectory()
    ) throws(ConfigError) {
        let metadata = InstanceMetadata(environment: environment)
        chain = CredentialChain(
            profile: profile,
            environment: environment,
            homeDirectory: homeDirectory,
            instanceRole: { try metadata.credentials() }
        )
        self.endpoint = try S3Endpoint.resolve(
            region: Self.region(configured: configured, environment: environment, chain: chain),
            endpoint: endpoint,
            pathStyle: pathStyle,
            environment: environment
        )
        let fromEnvironment = environment["AWS_CA_BUNDLE"].flatMap { $0.isEmpty ? nil : $0 }
        if let bundle = caBundle ?? fromEnvironment {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: bundle, isDirectory: &isDirectory), !isDirectory.boolValue,
                FileManager.default.isReadableFile(atPath: bundle)
            else {
                throw ConfigError(
                    keyPath: caBundle != nil ? "s3.ca_bundle" : "AWS_CA_BUNDLE",
                    "no readable file at '\(bundle)'"
                )
            }
            self.endpoint.caBundle = bundle
        }
        credentials = CredentialProvider(chain: chain)
    }

    /// The region requests are signed for, resolved the one way every command uses: `configured`
    /// (`s3.region`), else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the profile's region in the shared
    /// config file, else `us-east-1`.
    package static func region(
        configured: String?,
        environment: [String: String],
        chain: CredentialChain
    ) -> String {
        configured ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"]
            ?? chain.regionFromSharedConfig() ?? "us-east-1"
    }

    /// A client for the calling thread.
    package func client(logger: Logger, timeouts: HTTPTimeouts = HTTPTimeouts()) throws(S3Error) -> S3Client {
        let client = try S3Client(
            endpoint: endpoint,
            credentials: credentials,
            timeouts: timeouts,
            clock: clock,
            logger: logger
        )
        client.bandwidth = bandwidth
        return client
    }
}

extension S3Context {
    /// Refuses to start when the configured bucket cannot be used (credentials, bucket, endpoint): HeadBucket,
    /// or, when the first directory names the bucket, at least credentials that resolve.
    ///
    /// A transient failure (the network dropped, the store is throttling) is tried again for up to `patience`,
    /// so a link that drops for a moment at the start does not end the run; a permanent one (no such bucket,
    /// access denied) is reported at once.
    ///
    /// - Parameter bucket: The bucket every file goes to; `nil` when the first directory names it per file.
    package func checkDestination(
        bucket: String?,
        logger: Logger,
        patience: Duration = .seconds(10)
    ) throws {
        guard let bucket else {
            _ = try credentials.credentials()
            return
        }
        let client = try client(
            logger: logger,
            timeouts: HTTPTimeouts(connectSeconds: 5, stallSeconds: 10, totalSeconds: 30)
        )
        let deadline = ContinuousClock.now + patience
        let backoff = Backoff(baseSeconds: 0.5, capSeconds: 4)
        for attempt in 1... {
            let failure: S3Error
            do {
                try client.headBucket(bucket)
                return
            } catch {
                failure = error
            }
            let wait = backoff.ceiling(afterAttempt: attempt)
            guard failure.isTransient, ContinuousClock.now + .seconds(wait) < deadline else { throw failure }
            logger.warning(
                "the bucket could not be reached; trying again",
                metadata: ["bucket": "\(bucket)", "error": "\(failure)", "wait_seconds": "\(wait)"]
            )
            Thread.sleep(forTimeInterval: wait)
        }
    }
}
