import FleetAWS
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

/// IMDSv2 against a local stand-in of the metadata service (scripts/testing/imds-server.py).
@Suite(.serialized)
struct InstanceMetadataTests {
    /// Starts the stand-in and returns its base URL and process.
    private func startServer(_ arguments: [String] = []) throws -> (url: String, process: Process) {
        let port = try unusedPort()
        let script = repositoryScript("testing/imds-server.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, String(port)] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardInput = Pipe()  // the stand-in exits when this closes
        try process.run()
        let ready = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        guard ready.hasPrefix("ready") else {
            stop(process)
            throw TestEnvironmentError(description: "the IMDS stand-in did not start (python3 \(script))")
        }
        return ("http://127.0.0.1:\(port)", process)
    }

    /// SIGKILL, not terminate(): a child started from a Dispatch thread inherits its blocked SIGTERM.
    private func stop(_ process: Process) {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    @Test func roleCredentialsComeThroughTheSessionToken() throws {
        let (url, process) = try startServer()
        defer { stop(process) }

        let credentials = try #require(
            try InstanceMetadata(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": url]).credentials()
        )

        #expect(credentials.accessKeyID == "ASIAIMDSTESTKEY00001")
        #expect(credentials.sessionToken == "imds-session-token")
        #expect(credentials.source == "EC2 instance role fleet-uploader")
        #expect(credentials.expiration == Date(timeIntervalSince1970: 1_893_456_000))
    }

    @Test func instanceWithoutRoleSaysSo() throws {
        let (url, process) = try startServer(["--no-role"])
        defer { stop(process) }

        let error = try #require(throws: CredentialsError.self) {
            try InstanceMetadata(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": url]).credentials()
        }
        #expect(error.message.contains("no IAM role attached"))
    }

    @Test func noMetadataServiceMeansNoCredentialsNotAnError() throws {
        let port = try unusedPort()
        let credentials = try InstanceMetadata(environment: [
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(port)"
        ])
        .credentials()
        #expect(credentials == nil)
    }

    @Test func chainFallsBackToTheInstanceRoleLast() throws {
        let (url, process) = try startServer()
        defer { stop(process) }
        let environment = ["AWS_EC2_METADATA_SERVICE_ENDPOINT": url]
        let metadata = InstanceMetadata(environment: environment)

        let chain = CredentialChain(
            profile: nil,
            environment: environment,
            homeDirectory: "/nonexistent-home",
            instanceRole: { try metadata.credentials() }
        )

        #expect(try chain.resolve().source == "EC2 instance role fleet-uploader")
    }
}
