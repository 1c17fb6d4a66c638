import FleetSystem
import FleetTestSupport
import Foundation
import Testing

/// The ledger over TLS as a fleet reaches it: a private cluster that takes only `hostssl` connections, with a
/// throwaway CA (`scripts/testing/pg-tls.sh`); vehicles connect with `sslmode=verify-full`, one with a client
/// certificate and one with its password.
@Suite(.serialized)
struct LedgerTLSCLITests {
    @Test func vehiclesReachTheLedgerOverVerifiedTLSAndAServerCertificateForAnotherHostIsRefused() throws {
        let s3 = try TestS3()
        let scratch = try Scratch()
        defer { scratch.remove() }
        let script = repositoryScript("testing/pg-tls.sh")
        let cluster = scratch.url.appendingPathComponent("pg").path
        let started = try CLI.runTool(script, ["start", cluster, "truck-cert"])
        defer { _ = try? CLI.runTool(script, ["stop", cluster]) }
        try #require(started.status == 0, "pg-tls.sh: \(started.stderr)")
        let port = try #require(
            started.stdout.split(separator: " ").last.flatMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        )
        let tls = cluster + "/tls"
        let verified = "port=\(port) dbname=postgres sslmode=verify-full sslrootcert=\(tls)/ca.crt"
        let admin = "host=localhost user=fleet \(verified)"

        #expect(try CLI.run("master", ["migrate", "--database", admin]).status == 0)
        let certificate = try CLI.run(
            "master",
            ["device", "add", "truck-cert", "--certificate", "--project", "tls-logs", "--database", admin]
        )
        #expect(certificate.status == 0, "\(certificate.stderr)")
        let withPassword = try CLI.run(
            "master",
            ["device", "add", "truck-pw", "--project", "tls-logs", "--database", admin]
        )
        #expect(withPassword.status == 0, "\(withPassword.stderr)")
        let password = try #require(
            withPassword.stdout.split(separator: "\n").first { $0.hasPrefix("password: ") }?.dropFirst(10)
        )

        // The vehicle with a client certificate uploads.
        try scratch.write("data/a.log", "alpha")
        try scratch.write("data/b.log", "bravo")
        let config = try scratch.write(
            "session.json",
            """
            {
              "project": { "name": "tls-logs" }, "device": "truck-cert",
              "s3": { "bucket": "\(s3.bucket)", "prefix": "\(s3.prefix)", "endpoint": "\(s3.endpoint)",
                      "region": "\(s3.region)" },
              "source": { "path": "data" }
            }
            """
        )
        let clientCertificate = "sslcert=\(tls)/client.crt sslkey=\(tls)/client.key"
        let upload = try CLI.run(
            "upload",
            ["--config", config],
            environment: s3.environment.merging([
                "DATABASE_URL": "host=localhost user=truck-cert \(verified) \(clientCertificate)"
            ]) { $1 }
        )
        #expect(upload.status == 0, "\(upload.stderr)")
        #expect(try bucketContents(s3).count == 2)

        // The vehicle with a password reads the ledger; the server saw only the verifier `device add` made.
        let asPassword = try CLI.run(
            "master",
            ["status"],
            environment: ["DATABASE_URL": "host=localhost user=truck-pw \(verified)", "PGPASSWORD": String(password)]
        )
        #expect(asPassword.status == 0, "\(asPassword.stderr)")
        #expect(asPassword.stdout.contains("as truck-pw"))

        // Refused, each with one line naming the ledger and the reason, exit 3: a server certificate that is not
        // for the host asked for; the certificate vehicle without its certificate; a wrong password.
        let refusals: [(String, [String: String], String)] = [
            (
                "host=ledger.invalid hostaddr=127.0.0.1 user=truck-cert \(verified) \(clientCertificate)", [:],
                "does not match host name \"ledger.invalid\""
            ),
            ("host=localhost user=truck-cert \(verified)", [:], "truck-cert"),
            (
                "host=localhost user=truck-pw \(verified)", ["PGPASSWORD": "not-the-password"],
                "password authentication failed"
            ),
        ]
        for (url, environment, reason) in refusals {
            let result = try CLI.run(
                "upload",
                ["--config", config],
                environment: s3.environment.merging(environment.merging(["DATABASE_URL": url]) { $1 }) { $1 }
            )
            #expect(result.status == 3, "\(url): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            #expect(result.reason.hasPrefix("upload: cannot connect to the ledger at "), "\(result.reason)")
            #expect(result.reason.contains(reason), "\(result.reason)")
        }
    }
}
