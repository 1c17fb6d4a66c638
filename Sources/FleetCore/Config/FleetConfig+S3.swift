import FleetAWS
import FleetSystem
import Foundation

extension S3Context {
    /// Resolves region, endpoint and the credentials chain from the `s3.*` settings and the environment.
    ///
    /// With `s3.credentials_path`, the shared files are that directory's `credentials` and `config`, whatever
    /// `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` say.
    ///
    /// - Throws: `ConfigError` for an `s3.endpoint` that cannot be used.
    package init(
        config: FleetConfig,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        homeDirectory: String = NSHomeDirectory()
    ) throws(ConfigError) {
        var environment = environment
        if let directory = config.s3.credentialsPath {
            // The configuration names the directory, so it comes before the variables that name the files.
            let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
            environment["AWS_SHARED_CREDENTIALS_FILE"] = base + "/credentials"
            environment["AWS_CONFIG_FILE"] = base + "/config"
        }
        try self.init(
            region: config.s3.region,
            endpoint: config.s3.endpoint,
            pathStyle: config.s3.pathStyle,
            profile: config.s3.profile,
            caBundle: config.s3.caBundle,
            environment: environment,
            homeDirectory: homeDirectory
        )
        bandwidth = config.resolved.upload.maxBandwidth.map(BandwidthLimiter.shared)
    }
}

extension FleetConfig {
    /// The bucket every file goes to; `nil` when the first directory names each file's bucket.
    package var destinationBucket: String? { resolved.keys.firstDirIsBucket ? nil : s3.bucket }
}

extension CloudWatchClient {
    /// The client `metrics.cloudwatch` describes, sharing `context`'s credentials and, by default, its region.
    ///
    /// - Throws: `ConfigError` for a bad endpoint.
    package init(settings: ResolvedConfig.Metrics.CloudWatch, context: S3Context) throws(ConfigError) {
        try self.init(
            endpoint: settings.endpoint,
            region: settings.region ?? context.endpoint.region,
            namespace: settings.namespace,
            vehicleID: settings.vehicleId,
            credentials: context.credentials
        )
    }
}
