import FleetSystem
import FleetTestSupport
import Foundation
import Testing

/// A custom endpoint behind TLS with a certificate from a private CA: refused while only the system's CAs are
/// trusted, uploaded through once the CA is given by `AWS_CA_BUNDLE` or `s3.ca_bundle` (libcurl's
/// `CURLOPT_CAINFO`); a bundle that cannot be read is configuration.
@Suite(.serialized) struct PrivateCACLITests {
    @Test func privateCAIsTrustedFromTheEnvironmentOrTheConfiguration() throws {
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let relay = try TLSRelay(target: s3.endpoint, directory: scratch.url)
        try scratch.write("data/a.log", "alpha")

        // Only the system's CAs: the certificate is refused before a session opens.
        let fromEnvironment = try TestDatabase()
        defer { fromEnvironment.drop() }
        let untrusted = try runUpload(try configFile(scratch, s3, endpoint: relay.endpoint), fromEnvironment, s3)
        #expect(untrusted.status == 3, "\(untrusted.stderr)")
        #expect(untrusted.stderr.lowercased().contains("certificate"), "\(untrusted.stderr)")
        #expect(try fromEnvironment.connect().execute("SELECT count(*) FROM sync_sessions").int(0, 0) == 0)

        // AWS_CA_BUNDLE names the CA.
        var environment = s3.environment
        environment["AWS_CA_BUNDLE"] = relay.caBundle
        let first = try runUpload(
            try configFile(scratch, s3, endpoint: relay.endpoint),
            fromEnvironment,
            s3,
            environment: environment
        )
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try bucketContents(s3)[s3.prefix + "a.log"]?.0 == 5)

        // s3.ca_bundle, relative to the configuration file, names it; a second file goes up the same way.
        try scratch.write("data/b.log", "bravo")
        let fromConfig = try TestDatabase()
        defer { fromConfig.drop() }
        let second = try runUpload(
            try configFile(scratch, s3, endpoint: relay.endpoint, extraS3: #", "ca_bundle": "ca.pem""#),
            fromConfig,
            s3
        )
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try bucketContents(s3)[s3.prefix + "b.log"]?.0 == 5)
    }

    @Test func unreadableCABundleIsAConfigurationError() throws {
        let s3 = try TestS3()
        let database = try TestDatabase()
        defer { database.drop() }
        let scratch = try Scratch()
        defer { scratch.remove() }
        try scratch.write("data/a.log", "alpha")

        let result = try runUpload(
            try configFile(scratch, s3, extraS3: #", "ca_bundle": "/nonexistent/ca.pem""#),
            database,
            s3
        )

        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.reason == "upload: s3.ca_bundle: no readable file at '/nonexistent/ca.pem'")
        _ = try database.ledger()
        #expect(try database.connect().execute("SELECT count(*) FROM sync_sessions").int(0, 0) == 0)
    }
}
