import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

// Shared by the tests that run whole sessions (upload, retry, master once): a session config in a scratch
// directory, the bucket read back with boto3, and polling the ledger.

func configFile(
    _ scratch: Scratch,
    _ s3: TestS3,
    upload: String = #"{ "workers": 4 }"#,
    endpoint: String? = nil,
    bucket: String? = nil,
    extraS3: String = "",
    sections: String = "",
    project: String? = nil,
    device: String = "test-rig",
    source: String = "data",
    file: String = "session.json"
) throws -> String {
    try scratch.write(
        file,
        """
        {
          "project": { "name": "\(project ?? "e2e-\(UUID().uuidString.prefix(8))")" },
          "device": "\(device)",
          "s3": { "bucket": "\(bucket ?? s3.bucket)", "prefix": "\(s3.prefix)", "endpoint": "\(endpoint ?? s3.endpoint)",
                  "region": "\(s3.region)" \(extraS3) },
          "source": { "path": "\(source)" },
          "upload": \(upload)\(sections.isEmpty ? "" : ",\n  " + sections)
        }
        """
    )
}

/// key → (size, sha256) of everything under the test's prefix, read back with boto3.
func bucketContents(_ s3: TestS3, endpoint: String? = nil, bucket: String? = nil) throws -> [String: (Int, String)] {
    let script = repositoryScript("testing/verify-bucket.py")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script, endpoint ?? s3.endpoint, bucket ?? s3.bucket, s3.prefix]
    process.environment = ProcessInfo.processInfo.environment.merging(s3.environment) { $1 }
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0,
        let json = try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]]
    else { throw TestEnvironmentError(description: "verify-bucket.py failed (is boto3 installed?)") }
    return json.mapValues { (($0["size"] as? Int) ?? -1, ($0["sha256"] as? String) ?? "") }
}

/// Polls the ledger (up to 30 s) until at least `count` files are recorded uploaded; returns how many are.
func waitForUploads(_ connection: PGConnection, atLeast count: Int) -> Int {
    var uploaded = 0
    for _ in 0..<600 where uploaded < count {
        Thread.sleep(forTimeInterval: 0.05)
        uploaded =
            (try? connection.execute("SELECT count(*) FROM file_uploads WHERE status = 'uploaded'").int(0, 0)) ?? 0
    }
    return uploaded
}

func sha256(_ url: URL) throws -> String { SHA256.hex(of: Array(try Data(contentsOf: url))) }

func summary(_ result: CLIResult) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
}

/// Upload settings for a run an outage cuts off: two workers, quick retries, and giving up after a second
/// without a success, so the session ends with transient failures for `retry` to finish.
let outageUploadSettings =
    #"{ "workers": 2, "max_attempts": 2, "backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.1, "give_up_after_seconds": 1 }"#

/// Runs `upload --config CONFIG --database URL` (then `extra`) to the end with the test server's credentials.
func runUpload(
    _ config: String,
    _ database: TestDatabase,
    _ s3: TestS3,
    _ extra: [String] = [],
    environment: [String: String]? = nil
) throws -> CLIResult {
    try CLI.run(
        "upload",
        ["--config", config, "--database", database.url] + extra,
        environment: environment ?? s3.environment
    )
}

/// Nothing left half-done by a process that ended: no file held by a claim (a row `uploading`, a claim range), no
/// session `running`. (Rows an interrupted session never tried stay `pending` in it, for `retry`.)
func expectNothingLeftHalfDone(_ connection: PGConnection) throws {
    let state = try connection.execute(
        """
        SELECT (SELECT count(*) FROM file_uploads WHERE status = 'uploading'),
               (SELECT count(*) FROM sync_sessions WHERE status = 'running'),
               (SELECT count(*) FROM file_claims)
        """
    )
    #expect(state.int(0, 0) == 0, "rows left uploading")
    #expect(state.int(0, 1) == 0, "sessions left running")
    #expect(state.int(0, 2) == 0, "claim ranges left")
}

/// How many files of the ledger a claim holds: rows marked `uploading`, and pending rows in a claim range.
func heldFiles(_ connection: PGConnection, heldBy holder: String? = nil) throws -> Int {
    try connection.execute(
        """
        SELECT count(*) FROM sync_sessions AS s CROSS JOIN LATERAL fleet_claimed_files(s.id) AS c
        WHERE \(holder)::text IS NULL OR c.holder = \(holder)::text
        """
    ).int(0, 0) ?? -1
}

/// A new bucket with versioning enabled, created with boto3 (`scripts/testing/object-versions.py`), where every
/// write of a key leaves a version: a test counts them to see how often an object was written.
func versionedBucket(_ s3: TestS3) throws -> String {
    let bucket = "fleet-versions-" + UUID().uuidString.lowercased().prefix(12)
    _ = try objectVersionsScript(s3, ["create", bucket])
    return bucket
}

/// key → how many versions the versioned `bucket` holds of it, under the test's prefix.
func objectVersions(_ s3: TestS3, bucket: String) throws -> [String: Int] {
    let data = try objectVersionsScript(s3, ["count", bucket, s3.prefix])
    guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Int] else {
        throw TestEnvironmentError(description: "object-versions.py count: not a JSON object of counts")
    }
    return json
}

private func objectVersionsScript(_ s3: TestS3, _ arguments: [String]) throws -> Data {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", repositoryScript("testing/object-versions.py"), s3.endpoint] + arguments
    process.environment = ProcessInfo.processInfo.environment.merging(s3.environment) { $1 }
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestEnvironmentError(description: "object-versions.py \(arguments[0]) failed (is boto3 installed?)")
    }
    return data
}
