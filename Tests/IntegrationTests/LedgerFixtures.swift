@testable import FleetLedger

/// A running session of a fresh project and device.
func openTestSession(_ ledger: Ledger) throws -> Int64 {
    let projectID = try ledger.upsertProject(
        ProjectDestination(
            name: "survey",
            bucket: "fleet-data",
            prefix: "raw",
            region: "us-east-1",
            endpoint: nil,
            keyTemplate: "{prefix}/{path}"
        )
    )
    let deviceID = try ledger.upsertDevice(name: "rig-1", hostname: "rig-1.local", agentVersion: "1.0")
    let configID = try ledger.recordConfig(
        projectID: projectID,
        hash: String(repeating: "a", count: 64),
        json: "{}",
        sourcePath: nil
    )
    return try ledger.openSession(
        kind: "upload",
        projectID: projectID,
        deviceID: deviceID,
        configID: configID,
        localDirectory: "/data",
        bucket: "fleet-data",
        prefix: "raw"
    )
}
