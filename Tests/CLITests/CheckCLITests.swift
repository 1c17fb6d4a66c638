import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// `upload --check` against the local S3 server, as a user runs it.
struct CheckCLITests {
    private func configFile(
        _ scratch: Scratch,
        _ s3: TestS3,
        bucket: String = "fleet-test",
        endpoint: String? = nil
    )
        throws -> String
    {
        try scratch.write("data/a.wav", "x")
        return try scratch.write(
            "check.json",
            """
            {
              "project": { "name": "check" },
              "s3": { "bucket": "\(bucket)", "endpoint": "\(endpoint ?? s3.endpoint)", "region": "\(s3.region)" },
              "source": { "path": "data" }
            }
            """
        )
    }

    private func run(
        _ path: String,
        _ s3: TestS3,
        database: TestDatabase,
        environment: [String: String]? = nil
    ) throws
        -> CLIResult
    {
        try CLI.run(
            "upload",
            ["--config", path, "--check", "--database", database.url],
            environment: environment ?? s3.environment
        )
    }

    @Test func passesAgainstTheLocalServerAndNamesTheCredentialSource() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }

        let result = try run(configFile(scratch, s3), s3, database: database)

        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("✔ ledger"))
        #expect(result.stdout.contains("✔ credentials"))
        #expect(result.stdout.contains("environment"))
        #expect(result.stdout.contains("✔ identity"))
        #expect(result.stdout.contains("✔ bucket fleet-test"))
        #expect(!result.stdout.contains(s3.secretAccessKey))
    }

    @Test func missingBucketExitsThreeSayingWhatToDo() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }

        let result = try run(configFile(scratch, s3, bucket: "fleet-no-such-bucket"), s3, database: database)

        #expect(result.status == 3)
        #expect(result.reason.hasPrefix("upload: check failed: bucket fleet-no-such-bucket:"), "\(result.stderr)")
        #expect(result.reason.contains("create bucket fleet-no-such-bucket or fix s3.bucket"))
    }

    @Test func wrongSecretExitsThreeNamingTheKeyButNotTheSecret() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        var environment = s3.environment
        environment["AWS_SECRET_ACCESS_KEY"] = "wrong-secret-key-wrong-secret-key-wrong0"

        let result = try run(configFile(scratch, s3), s3, database: database, environment: environment)

        #expect(result.status == 3)
        #expect(result.reason.contains("signature_mismatch"), "\(result.stderr)")
        #expect(result.reason.contains("aws configure"))
        #expect(!result.stderr.contains("wrong-secret") && !result.stdout.contains("wrong-secret"))
    }

    @Test func wrongEndpointExitsThreeAsANetworkProblem() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        let port = try unusedPort()

        let result = try run(configFile(scratch, s3, endpoint: "http://127.0.0.1:\(port)"), s3, database: database)

        #expect(result.status == 3)
        #expect(result.reason.contains("S3 network"), "\(result.stderr)")
        #expect(result.reason.contains("check s3.endpoint"))
    }

    @Test func noCredentialsAnywhereExitsThreeListingWhatWasTried() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }

        let result = try run(
            configFile(scratch, s3),
            s3,
            database: database,
            environment: ["AWS_EC2_METADATA_DISABLED": "true", "HOME": scratch.url.path]
        )

        #expect(result.status == 3)
        #expect(result.reason.contains("check failed: credentials"), "\(result.stderr)")
        #expect(result.reason.contains("aws configure"))
    }
}
