import FleetSystem
import Foundation

/// Which sessions `master status` lists.
package struct StatusFilter: Sendable, Equatable {
    /// The most sessions listed, newest first.
    package var limit: Int
    /// Only this project's sessions, and only this project in the project totals.
    package var project: String?
    /// Only this device's sessions, and only this device in the device list.
    package var device: String?

    package init(limit: Int = 20, project: String? = nil, device: String? = nil) {
        self.limit = limit
        self.project = project
        self.device = device
    }
}

/// The fleet at a glance: recent sessions, the failures in them, per-project totals and every device.
///
/// Read from the session and device rows, never by counting file rows, except for the failures of the
/// sessions listed, which come from the partial index on failed files.
package struct FleetStatus: Sendable {
    /// The database's clock when the status was read; heartbeat ages are measured against it.
    package var readAt: Timestamp
    package var filter: StatusFilter
    /// The latest sessions matching the filter, newest first.
    package var sessions: [Session]
    /// Failed and permanently failed files of `sessions` by error class (`""` for files without one).
    package var failuresByClass: [String: Int]
    /// How many days back `projects` counts sessions.
    package var projectWindowDays: Int
    /// Every project (or the filtered one), by name.
    package var projects: [Project]
    /// Every device (or the filtered one), by name.
    package var devices: [Device]
    /// The server's connections to this database by application, besides the one reading the status.
    package var connections: [Connections]

    /// One session as its row records it, with the totals it closed with. The row's fields read through it
    /// (`session.status`).
    @dynamicMemberLookup
    package struct Session: Sendable {
        package var row: SessionRow
        /// The totals written when the session closed; `nil` while it runs.
        package var totals: Totals?
        /// Marked running, but its heartbeat stopped (`SessionRow.isStale`) when the status was read.
        package var stale = false

        package subscript<Value>(dynamicMember keyPath: KeyPath<SessionRow, Value>) -> Value {
            row[keyPath: keyPath]
        }

        /// Uploaded files per second over the whole session; `nil` while it runs or when it took no time.
        package var filesPerSecond: Double? {
            guard let totals, row.durationSeconds > 0 else { return nil }
            return Double(totals.uploadedFiles) / row.durationSeconds
        }

        /// Uploaded bytes per second over the whole session; `nil` while it runs or when it took no time.
        package var bytesPerSecond: Double? {
            guard let totals, row.durationSeconds > 0 else { return nil }
            return Double(totals.uploadedBytes) / row.durationSeconds
        }
    }

    /// The totals columns of a closed session.
    package struct Totals: Sendable, Equatable {
        package var files: Int64
        package var bytes: Int64
        package var uploadedFiles: Int64
        package var uploadedBytes: Int64
        package var skippedFiles: Int64
        package var skippedBytes: Int64
        package var failedFiles: Int64
    }

    /// A project's activity within the window.
    package struct Project: Sendable, Equatable {
        package var name: String
        /// Sessions started within the window.
        package var sessions: Int
        /// What those sessions uploaded and failed (running sessions count once they close).
        package var uploadedFiles: Int64
        package var uploadedBytes: Int64
        package var failedFiles: Int64
        /// When its latest session started, however long ago; `nil` if it never ran one.
        package var lastSessionAt: Timestamp?
    }

    /// A device as its last heartbeat left it.
    package struct Device: Sendable, Equatable {
        package var name: String
        package var hostname: String?
        package var agentVersion: String?
        package var lastHeartbeatAt: Timestamp?
        /// Seconds between the last heartbeat and `readAt`.
        package var heartbeatAgeSeconds: Double?
        package var diskUsedPercent: Double?
        /// Files ready but not yet uploaded.
        package var queueFiles: Int64?
        package var queueBytes: Int64?
        package var lastUploadAt: Timestamp?
    }

    /// The server's connections (backends) of one application, from `pg_stat_activity`. Behind PgBouncer these
    /// are its server connections, named after the client that used each last.
    package struct Connections: Sendable, Equatable {
        /// `application_name` (empty when the client set none).
        package var application: String?
        package var total: Int
        /// Running a statement now.
        package var active: Int
        /// Inside a transaction, between statements.
        package var idleInTransaction: Int
        /// Open, doing nothing.
        package var idle: Int

        /// Connections whose state the reader may not see: other roles' connections show their application to
        /// everyone, but their state only to a role granted `pg_read_all_stats` (or a member of theirs).
        package var stateHidden: Int { total - active - idleInTransaction - idle }
    }
}

// MARK: - JSON

extension FleetStatus: Encodable {
    private enum CodingKeys: String, CodingKey {
        case readAt = "read_at"
        case filter, sessions
        case failuresByClass = "failures_by_class"
        case projectWindowDays = "project_window_days"
        case projects, devices, connections
    }

    /// Snake-case keys; times in RFC 3339 UTC; absent values as `null`.
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(readAt, forKey: .readAt)
        try container.encode(filter, forKey: .filter)
        try container.encode(sessions, forKey: .sessions)
        try container.encode(failuresByClass, forKey: .failuresByClass)
        try container.encode(projectWindowDays, forKey: .projectWindowDays)
        try container.encode(projects, forKey: .projects)
        try container.encode(devices, forKey: .devices)
        try container.encode(connections, forKey: .connections)
    }
}

extension StatusFilter: Encodable {
    private enum CodingKeys: String, CodingKey { case limit, project, device }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(limit, forKey: .limit)
        try container.encode(project, forKey: .project)
        try container.encode(device, forKey: .device)
    }
}

extension FleetStatus.Session: Encodable {
    private enum CodingKeys: String, CodingKey {
        case filesPerSecond = "files_per_second"
        case bytesPerSecond = "bytes_per_second"
        case stale
    }

    /// The row's summary with the closing totals and throughput beside it, `null` while the session runs.
    package func encode(to encoder: any Encoder) throws {
        try row.encodeSummary(to: encoder)
        var totalsContainer = encoder.container(keyedBy: SessionTotalsKey.self)
        try totalsContainer.encode(totals?.files, forKey: .totalFiles)
        try totalsContainer.encode(totals?.bytes, forKey: .totalBytes)
        try totalsContainer.encode(totals?.uploadedFiles, forKey: .uploadedFiles)
        try totalsContainer.encode(totals?.uploadedBytes, forKey: .uploadedBytes)
        try totalsContainer.encode(totals?.skippedFiles, forKey: .skippedFiles)
        try totalsContainer.encode(totals?.skippedBytes, forKey: .skippedBytes)
        try totalsContainer.encode(totals?.failedFiles, forKey: .failedFiles)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(filesPerSecond.map(thousandths), forKey: .filesPerSecond)
        try container.encode(bytesPerSecond.map { $0.rounded() }, forKey: .bytesPerSecond)
        try container.encode(stale, forKey: .stale)
    }
}

extension FleetStatus.Project: Encodable {
    private enum CodingKeys: String, CodingKey {
        case name = "project"
        case sessions
        case uploadedFiles = "files_uploaded"
        case uploadedBytes = "bytes_uploaded"
        case failedFiles = "files_failed"
        case lastSessionAt = "last_session_at"
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(sessions, forKey: .sessions)
        try container.encode(uploadedFiles, forKey: .uploadedFiles)
        try container.encode(uploadedBytes, forKey: .uploadedBytes)
        try container.encode(failedFiles, forKey: .failedFiles)
        try container.encode(lastSessionAt, forKey: .lastSessionAt)
    }
}

extension FleetStatus.Device: Encodable {
    private enum CodingKeys: String, CodingKey {
        case name = "device"
        case hostname
        case agentVersion = "agent_version"
        case lastHeartbeatAt = "last_heartbeat_at"
        case heartbeatAgeSeconds = "heartbeat_age_seconds"
        case diskUsedPercent = "disk_used_percent"
        case queueFiles = "queue_files"
        case queueBytes = "queue_bytes"
        case lastUploadAt = "last_upload_at"
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(hostname, forKey: .hostname)
        try container.encode(agentVersion, forKey: .agentVersion)
        try container.encode(lastHeartbeatAt, forKey: .lastHeartbeatAt)
        try container.encode(heartbeatAgeSeconds.map(thousandths), forKey: .heartbeatAgeSeconds)
        try container.encode(diskUsedPercent, forKey: .diskUsedPercent)
        try container.encode(queueFiles, forKey: .queueFiles)
        try container.encode(queueBytes, forKey: .queueBytes)
        try container.encode(lastUploadAt, forKey: .lastUploadAt)
    }
}

extension FleetStatus.Connections: Encodable {
    private enum CodingKeys: String, CodingKey {
        case application, total, active, idle
        case idleInTransaction = "idle_in_transaction"
        case stateHidden = "state_hidden"
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(application, forKey: .application)
        try container.encode(total, forKey: .total)
        try container.encode(active, forKey: .active)
        try container.encode(idleInTransaction, forKey: .idleInTransaction)
        try container.encode(idle, forKey: .idle)
        try container.encode(stateHidden, forKey: .stateHidden)
    }
}
