import FleetLedger
import Foundation
import Logging

/// How one cycle ended: the upload session, the retry rounds that followed it, the trigger's delivery.
package struct CycleResult: Sendable {
    package var upload: UploadSummary
    package var retry: RetrySummary?
    package var trigger: TriggerResult?
    /// Earlier sessions of the project announced again because their deliveries had failed, in order.
    package var redelivered: [TriggerResult] = []
}

/// Upload, automatic retry rounds when files failed, trigger: each step only when the one before left the
/// session in a state that calls for it. `master once` runs one cycle; the agent runs one per upload.
///
/// After the session's own trigger (unless it failed: the endpoint is unwell), earlier sessions of the project
/// whose trigger was not delivered are announced again (`TriggerDelivery.deliverUndelivered`).
package struct UploadCycle {
    package var session: UploadSession
    /// Where to announce the session; nil: no trigger.
    package var trigger: TriggerOptions?
    /// Whether failed files get automatic retry rounds (`master once --no-retry` leaves them for `retry`).
    package var retries = true
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

        if retries, upload.status == .completedWithErrors, !state.stopRequested {
            var retrySession = RetrySession(databaseURL: session.databaseURL, logger: logger)
            retrySession.environment = session.environment
            retrySession.onRound = onRound
            var options = RetryOptions()
            options.auto = true
            // A fresh give-up clock: the upload's may have run out in the very outage the rounds wait for.
            result.retry = try retrySession.run(
                sessionID: upload.sessionID,
                options: options,
                state: RunState(
                    giveUpAfter: session.config.resolved.upload.giveUpAfterSeconds,
                    transferGrace: session.config.resolved.upload.stopTimeoutSeconds,
                    parent: state
                ),
                progress: progress
            )
        }

        if let trigger, upload.status != .failed, !state.stopRequested {
            let ledger = try Ledger(url: session.databaseURL, logger: logger)
            let announcer = TriggerDelivery(options: trigger, logger: logger)
            let delivery = try announcer.deliver(sessionID: upload.sessionID, ledger: ledger)
            onTrigger(delivery)
            result.trigger = delivery
            if delivery.outcome != .failed, !state.stopRequested {
                // An earlier session's announcement must not change how this session's cycle ends.
                do {
                    result.redelivered = try announcer.deliverUndelivered(
                        besides: upload.sessionID,
                        ledger: ledger,
                        each: onTrigger
                    )
                } catch {
                    logger.warning("earlier sessions' triggers were not announced again: \(error)")
                }
            }
        }
        return result
    }
}
