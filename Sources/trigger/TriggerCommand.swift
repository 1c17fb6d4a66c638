import ArgumentParser
import FleetCLI
import FleetCore
import FleetLedger
import FleetSystem
import Foundation
import Logging

@main
struct TriggerCommand: FleetCommand {
    static let configuration = CommandConfiguration(
        commandName: "trigger",
        abstract: "Announce a session to a downstream system: POST its summary as JSON to an endpoint.",
        discussion: """
            The session is read from the ledger and sent as one JSON document (Content-Type: application/json). \
            The fields keep the names the previous tool sent:

              session_id, bucket_name, s3_prefix, total_files,
              files_uploaded, total_size_bytes, local_directory

            and add project, device, kind, status, files_skipped, files_failed, bytes_uploaded, started_at and \
            finished_at (RFC 3339, UTC). bucket_name is null when the first directory names the bucket. With \
            --with-keys, "keys" lists every key the session uploaded, once each, in the order they were recorded: \
            strings, or {"bucket": …, "key": …} objects when bucket_name is null. Files skipped because they were \
            already uploaded are not listed. The document is streamed from a temporary file, never held in memory.

            Settings come from the trigger section of --config, else of the configuration the session ran with \
            (url, headers, timeout_seconds, max_attempts, backoff_base_seconds, backoff_cap_seconds, only_if, \
            with_keys); flags override them, and each --header is added to the configured headers, replacing one \
            of the same name. ${VARIABLE} in a header value is read from the environment when the request is \
            sent, as in --header 'Authorization: Bearer ${DOWNSTREAM_TOKEN}'; the value is never recorded.

            Network errors, timeouts, 5xx and 429 are retried with exponential backoff and jitter (or after \
            the wait the answer's Retry-After asks for, at most backoff_cap_seconds), up to --attempts \
            requests in all; any other answer (4xx, 3xx) is final. Every request of one run carries \
            Idempotency-Key: <session>-<delivery>, the delivery counting this session's runs of trigger from 1. \
            Every request is recorded in trigger_events: delivery, attempt, HTTP status, latency and the first \
            KiB of the response. A session that is still running is never announced. A delivery that failed is \
            tried again by the next master once or agent run of the project (5 deliveries at most, for 72 \
            hours).

            Exit codes: 0 delivered; 1 not sent: the session is still running, or --only-if complete and it has \
            failed or unfinished files or did not complete; 2 bad usage or configuration (unknown session, no \
            URL, a header variable that is not set); 3 not delivered (unreachable, 4xx, out of attempts) or the \
            ledger is unusable, or the output could not be written.
            """,
        version: FleetVersion.description
    )

    /// The Data Uploader's `trigger_endpoint.py` flags.
    static let renamedFlags = ["": [RenamedFlag("--session-id", "--session"), RenamedFlag("--endpoint-url", "--url")]]

    @Option(help: ArgumentHelp("The session to announce.", valueName: "id"))
    var session: Int64

    @Option(
        help: ArgumentHelp(
            "The endpoint, http:// or https://.",
            discussion: "Default: trigger.url of --config, else of the configuration the session ran with.",
            valueName: "url"
        )
    )
    var url: String?

    @Option(
        name: .customLong("header"),
        help: ArgumentHelp("A request header, 'Name: value' (repeatable); ${VARIABLE} reads the environment.")
    )
    var headers: [String] = []

    @Option(help: ArgumentHelp("Seconds one request may take (default 30).", valueName: "seconds"))
    var timeout: Double?

    @Option(help: ArgumentHelp("Requests at most, 1…100 (default 5).", valueName: "n"))
    var attempts: Int?

    @Option(
        help: ArgumentHelp(
            "always (default), or complete: announce only a session whose every file was uploaded or skipped.",
            valueName: "condition"
        )
    )
    var onlyIf: String?

    @Flag(inversion: .prefixedNo, help: "List every uploaded key in the payload (default: trigger.with_keys, else no).")
    var withKeys: Bool?

    @Option(
        name: .shortAndLong,
        help: ArgumentHelp("A configuration whose trigger section to use instead of the session's.", valueName: "file")
    )
    var config: String?

    @Flag(help: "Print the result as JSON on stdout.")
    var json = false

    @OptionGroup var common: CommonOptions

    func run() throws {
        let logger = common.logger(label: "fleet.trigger")
        let ledger = try Ledger(url: common.databaseURL, logger: logger)
        guard let record = try ledger.session(session) else {
            standardError("trigger: no session \(session) in the ledger at \(ledger.location)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        let settings: TriggerSettings?
        if let config {
            settings = try ConfigLoader.load(path: config).trigger
        } else if record.configID != nil {
            settings = try ledger.sessionConfig(record).trigger
        } else {
            settings = nil
        }
        if url == nil, settings?.url == nil {
            let looked = config ?? "the configuration of session \(session) or in --config"
            standardError("trigger: no endpoint: give --url, or set trigger.url in \(looked)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        let overrides = TriggerSettings(
            url: url,
            headers: headers.isEmpty ? nil : headers,
            timeoutSeconds: timeout,
            maxAttempts: attempts,
            onlyIf: onlyIf,
            withKeys: withKeys
        )
        let options = try TriggerOptions(settings: settings, overrides: overrides)

        let result = try TriggerDelivery(options: options, logger: logger).deliver(sessionID: session, ledger: ledger)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            standardOutput(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            standardOutput(result.summary)
        }
        switch result.outcome {
        case .delivered:
            return
        case .refused:
            standardError("trigger: \(result.summary)")
            throw ExitCode(ExitStatus.finishedWithFailures.rawValue)
        case .failed:
            standardError("trigger: \(result.summary)")
            throw ExitCode(ExitStatus.environment.rawValue)
        }
    }
}
