@testable import FleetLedger

/// A running session of a fresh project and device.
func openTestSession(_ ledger: Ledger) throws -> Int64 {
    try openTestSession(ledger, project: "survey", device: "rig-1").session
}

/// A running session of `project` and `device` (bucket `fleet-data`, prefix `raw`), with the ids it made.
func openTestSession(
    _ ledger: Ledger,
    project: String,
    device: String
) throws -> (session: Int64, project: Int64, device: Int64) {
    let projectID = try ledger.upsertProject(
        ProjectDestination(
            name: project,
            bucket: "fleet-data",
            prefix: "raw",
            region: "us-east-1",
            endpoint: nil,
            keyTemplate: "{prefix}/{path}"
        )
    )
    let deviceID = try ledger.upsertDevice(name: device, hostname: "\(device).local", agentVersion: "1.0")
    let configID = try ledger.recordConfig(
        projectID: projectID,
        hash: String(repeating: "a", count: 64),
        json: "{}",
        sourcePath: nil
    )
    let sessionID = try ledger.openSession(
        kind: "upload",
        projectID: projectID,
        deviceID: deviceID,
        configID: configID,
        localDirectory: "/data",
        bucket: "fleet-data",
        prefix: "raw"
    )
    return (sessionID, projectID, deviceID)
}
