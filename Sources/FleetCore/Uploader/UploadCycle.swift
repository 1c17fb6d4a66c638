import FleetLedger
import Foundation
import Logging

/// How one cycle ended: the upload session, the retry rounds that followed it, the trigger's delivery.
package struct CycleResult: Sendable {
    package var upload: UploadSummary
    package var retry: RetrySummary?
    package var trigger: TriggerResult?
}

/// Upload, automatic retry rounds when files failed, trigger: each step only when the one before left the
/// session in a state that calls for it. `master once` runs one cycle; the agent runs one per upload.
package struct UploadCycle {
    package var session: UploadSession
    /// Where to announce the session; nil: no trigger.
    package var trigger: TriggerOptions?
    package var logger: Logger
    /// Called as each step ends (the CLI prints its lines there).
    package var onUploaded: (UploadSummary) -> Void = { _ in }
    package var onRound: (@Sendable (RetrySummary.Round) -> Void)?
    package var onTrigger: (TriggerResult) -> Void = { _ in }

    package init(session: UploadSession, trigger: TriggerOptions?, logger: Logger) {
        self.session = session
        self.trigger = trigger
        self.logger = logger
    }

    /// - Throws: what `UploadSession.run` throws when the session cannot start; later problems end up in the
    ///   result (a retry or trigger error after the upload is logged and leaves that part nil).
    package func run(state: RunState, progress: UploadProgress) throws -> CycleResult {
        let upload = try session.run(state: state, progress: progress)
        onUploaded(upload)
        var result = CycleResult(upload: upload)

        if upload.status == .completedWithErrors, !state.stopRequested {
            var retrySession = RetrySession(databaseURL: session.databaseURL, logger: logger)
            retrySession.environment = session.environment
            retrySession.onRound = onRound
            var options = RetryOptions()
            options.auto = true
            // A fresh give-up clock: the upload's may have run out in the very outage the rounds wait for.
            result.retry = try retrySession.run(
                sessionID: upload.sessionID,
                options: options,
                state: RunState(giveUpAfter: session.config.resolved.upload.giveUpAfterSeconds, parent: state),
                progress: progress
            )
        }

        if let trigger, upload.status != .failed, !state.stopRequested {
            let delivery = try TriggerDelivery(options: trigger, logger: logger)
                .deliver(sessionID: upload.sessionID, ledger: try Ledger(url: session.databaseURL, logger: logger))
            onTrigger(delivery)
            result.trigger = delivery
        }
        return result
    }
}
