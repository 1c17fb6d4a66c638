/// What started an agent run; the ledger stores it as the session's kind.
package enum AgentRunKind: String, Sendable, Hashable, CustomStringConvertible {
    /// The run right after the start-up scan (`agent.upload_on_start`).
    case startup
    /// A run at a time of `agent.schedule`, inside operational hours or not.
    case scheduled
    /// A run for files that became ready inside operational hours.
    case immediate

    /// The raw value, as logged and stored.
    package var description: String { rawValue }
}

/// A run the state machine decided on: its kind and the files it takes, each in the version that was ready.
package struct AgentRunPlan: Sendable, Hashable {
    /// One file of the run, in the version the queue held.
    package struct Entry: Sendable, Hashable {
        package var file: SourceFile
        package var version: FileVersion

        package init(file: SourceFile, version: FileVersion) {
            self.file = file
            self.version = version
        }
    }

    package var kind: AgentRunKind
    /// Oldest in the queue first.
    package var files: [Entry]
    /// The sources' generation when the run was planned: after a reload that changed the sources, the source
    /// indices of `files` mean something else.
    package var generation: Int

    package init(kind: AgentRunKind, files: [Entry], generation: Int) {
        self.kind = kind
        self.files = files
        self.generation = generation
    }
}

/// What the agent's loop is to do next, as `AgentStateMachine` decides it.
///
/// Each action that has an outcome is answered with an event: `rescan` with `scanFinished`, `connect` with
/// `ledgerConnected` or `ledgerLost`, `reconcile` with `reconciled`, `reconciliationFailed` or `ledgerLost`,
/// `startRun` with `runSucceeded` or `runFailed` once the run ends. The machine asks for nothing else that
/// depends on an outcome until it has it.
package enum AgentAction: Sendable, Hashable {
    /// Why the sources are walked; a start-up scan's files wait for the start-up run or the schedule.
    package enum RescanReason: String, Sendable, Hashable, CustomStringConvertible {
        /// The scan when the agent starts (`agent.scan_existing_files`).
        case startup = "start-up scan"
        /// The safety net every `agent.rescan_minutes`, or when file events may have been missed.
        case periodic = "periodic rescan"
        /// A reload changed the sources or the scan rules: detection starts afresh, then walks them.
        case sourcesChanged = "sources changed"

        /// The reason as logged.
        package var description: String { rawValue }
    }

    /// One of the deletion policies in `DeletionPolicies`.
    package enum DeletionPolicy: String, Sendable, Hashable, CaseIterable {
        /// `deletion.after_upload`, checked every `min(heartbeat, 60 s)` and after each run.
        case afterUpload
        /// `deletion.age`, once a day at `deletion.age.at`.
        case age
        /// `deletion.emergency`, on the disk check every `min(heartbeat, 30 s)`.
        case emergency
    }

    /// Walk every source; answer with `scanFinished`.
    case rescan(RescanReason)
    /// Open the loop's ledger connection and register project and device; answer with `ledgerConnected` or
    /// `ledgerLost`.
    case connect
    /// Settle what a dead process or a failed run left `uploading` and abort the multipart uploads abandoned in
    /// the bucket (at start, after a failed run, and daily); answer with `reconciled`, `reconciliationFailed`
    /// (S3) or `ledgerLost`.
    case reconcile
    /// Start this run on the upload queue; answer with `runSucceeded` or `runFailed` when it ends.
    case startRun(AgentRunPlan)
    /// A run of this kind was due but no file is ready: nothing starts.
    case noFilesReady(AgentRunKind)
    /// Record the device's heartbeat (disk, queue, last upload).
    case sendHeartbeat
    /// Apply one deletion policy.
    case runDeletion(DeletionPolicy)

    /// Whether the action writes through the loop's ledger connection (heartbeat, deletions).
    package var needsLedger: Bool {
        switch self {
        case .sendHeartbeat, .runDeletion: true
        case .rescan, .connect, .reconcile, .startRun, .noFilesReady: false
        }
    }
}
