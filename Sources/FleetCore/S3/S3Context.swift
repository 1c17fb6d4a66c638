import Foundation
import Logging

/// Everything workers need to build their own `S3Client`: the resolved endpoint and one shared credential
/// provider (credentials are resolved once and refreshed before they expire).
package struct S3Context: Sendable {
    package var endpoint: S3Endpoint
    package var credentials: CredentialProvider
    package var chain: CredentialChain

    /// Resolves region, endpoint and the credentials chain from the configuration and the environment.
    ///
    /// Region: `s3.region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the profile's region in the
    /// shared config file, else `us-east-1`.
    package init(
        config: FleetConfig,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        homeDirectory: String = NSHomeDirectory()
    ) throws(ConfigError) {
        let metadata = InstanceMetadata(environment: environment)
        chain = CredentialChain(
            profile: config.s3.profile,
            environment: environment,
            homeDirectory: homeDirectory,
            instanceRole: { try metadata.credentials() }
        )
        let region =
            config.s3.region ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"]
            ?? chain.regionFromSharedConfig() ?? "us-east-1"
        endpoint = try S3Endpoint.resolve(
            region: region,
            endpoint: config.s3.endpoint,
            pathStyle: config.s3.pathStyle,
            environment: environment
        )
        credentials = CredentialProvider(chain: chain)
    }

    /// A client for the calling thread.
    package func client(logger: Logger, timeouts: HTTPTimeouts = HTTPTimeouts()) throws(S3Error) -> S3Client {
        try S3Client(endpoint: endpoint, credentials: credentials, timeouts: timeouts, logger: logger)
    }
}

extension S3Context {
    /// Refuses to start when the configured bucket cannot be used (credentials, bucket, endpoint): HeadBucket,
    /// or with the first directory naming the bucket, at least credentials that resolve.
    ///
    /// A transient failure (the network dropped, the store is throttling) is tried again for up to `patience`,
    /// so a link that drops for a moment at the start does not end the run; a permanent one (no such bucket,
    /// access denied) is reported at once.
    package func checkDestination(
        config: FleetConfig,
        logger: Logger,
        patience: Duration = .seconds(10)
    ) throws {
        guard !config.firstDirIsBucket, let bucket = config.s3.bucket else {
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
