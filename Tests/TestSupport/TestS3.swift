import FleetAWS
import FleetSystem
import Foundation
import Logging

@testable import FleetCore

/// The local S3 server the tests use (SeaweedFS, started by `scripts/s3.sh`), with a key prefix of its own
/// for each test so tests never see each other's objects.
package struct TestS3 {
    package let endpoint: String
    package let accessKeyID: String
    package let secretAccessKey: String
    package let region: String
    /// A bucket `scripts/s3.sh` created.
    package let bucket = "fleet-test"
    /// `t-<uuid>/`: this test's corner of the bucket.
    package let prefix: String

    package static let startHint =
        "FLEET_TEST_S3_ENDPOINT unset: start the local S3 server with `eval \"$(scripts/s3.sh start)\"`, "
        + "or run the whole suite with scripts/test.sh"

    package init() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let endpoint = environment["FLEET_TEST_S3_ENDPOINT"],
            let key = environment["FLEET_TEST_S3_ACCESS_KEY_ID"],
            let secret = environment["FLEET_TEST_S3_SECRET_ACCESS_KEY"]
        else { throw TestEnvironmentError(description: TestS3.startHint) }
        self.endpoint = endpoint
        accessKeyID = key
        secretAccessKey = secret
        region = environment["FLEET_TEST_S3_REGION"] ?? "us-east-1"
        prefix = "t-" + UUID().uuidString.lowercased() + "/"
    }

    /// The environment a user of this server would have: keys in `AWS_*`, nothing else.
    package var environment: [String: String] {
        [
            "AWS_ACCESS_KEY_ID": accessKeyID, "AWS_SECRET_ACCESS_KEY": secretAccessKey,
            "AWS_EC2_METADATA_DISABLED": "true",
        ]
    }

    /// A configuration pointing at this server.
    package func config(bucket: String? = nil, source: String = "/nonexistent") -> FleetConfig {
        FleetConfig(
            project: ProjectSettings(name: "test"),
            s3: S3Settings(bucket: bucket ?? self.bucket, prefix: prefix, region: region, endpoint: endpoint),
            source: SourceSettings(path: source)
        )
    }

    /// A client with these credentials (or others, to test refusals).
    package func client(
        accessKeyID: String? = nil,
        secretAccessKey: String? = nil,
        endpoint: String? = nil
    ) throws
        -> S3Client
    {
        var environment = self.environment
        if let accessKeyID { environment["AWS_ACCESS_KEY_ID"] = accessKeyID }
        if let secretAccessKey { environment["AWS_SECRET_ACCESS_KEY"] = secretAccessKey }
        var config = self.config()
        if let endpoint { config.s3.endpoint = endpoint }
        let context = try S3Context(config: config, environment: environment, homeDirectory: "/nonexistent-home")
        return try context.client(
            logger: quietLogger,
            timeouts: HTTPTimeouts(connectSeconds: 3, stallSeconds: 10, totalSeconds: 60)
        )
    }
}
