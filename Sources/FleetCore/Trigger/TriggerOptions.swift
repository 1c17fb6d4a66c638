import FleetSystem

/// How to announce a session: the `trigger` section of a configuration with command-line values applied
/// and the defaults filled in.
package struct TriggerOptions: Sendable, Equatable {
    /// When a session is announced.
    package enum Condition: String, Sendable, Equatable {
        /// Whatever the files' outcome (a session still running is never announced).
        case always
        /// Only a session that completed with every file uploaded or skipped.
        case complete
    }

    /// The endpoint, http or https; `user:password@` in it is used for the request but never recorded.
    package var url: String
    /// `Name: value` lines, `${VARIABLE}` still unexpanded (see `requestHeaders(environment:)`).
    package var headers: [String]
    /// Seconds one request may take.
    package var timeoutSeconds: Double
    /// Requests at most; only network errors, 5xx and 429 are retried.
    package var maxAttempts: Int
    /// The wait between requests.
    package var backoff: Backoff
    package var onlyIf: Condition
    /// Send every uploaded key in the payload.
    package var withKeys: Bool
    /// Keys read from the ledger per query while the payload is written.
    var keyPageSize = 10_000

    /// Combines the configuration's settings with command-line values.
    ///
    /// A value in `overrides` replaces the configuration's; a header in `overrides` is added, replacing the
    /// configuration's headers of the same name. Values that came from `overrides` are validated here (the
    /// configuration's were when it was loaded), and errors say they came from the command line.
    ///
    /// - Parameters:
    ///   - settings: the configuration's `trigger` section, if any.
    ///   - overrides: the values given on the command line.
    /// - Throws: `ConfigError` when there is no URL or an override is out of range.
    package init(settings: TriggerSettings?, overrides: TriggerSettings = TriggerSettings()) throws(ConfigError) {
        func invalid(_ key: String, _ message: String) -> ConfigError {
            ConfigError(keyPath: "trigger.\(key)", origin: "command line", message)
        }

        if let (key, message) = overrides.problems().first {
            // `--header` flags are not numbered the way a configuration's list is.
            throw invalid(key.hasPrefix("headers[") ? "headers" : key, message)
        }
        // A value given on the command line replaces the file's; then the defaults fill in the rest.
        var merged = settings ?? TriggerSettings()
        merged.url = overrides.url ?? merged.url
        merged.timeoutSeconds = overrides.timeoutSeconds ?? merged.timeoutSeconds
        merged.maxAttempts = overrides.maxAttempts ?? merged.maxAttempts
        merged.backoffBaseSeconds = overrides.backoffBaseSeconds ?? merged.backoffBaseSeconds
        merged.backoffCapSeconds = overrides.backoffCapSeconds ?? merged.backoffCapSeconds
        merged.onlyIf = overrides.onlyIf ?? merged.onlyIf
        merged.withKeys = overrides.withKeys ?? merged.withKeys
        let resolved = ResolvedConfig.Trigger(merged)

        guard let url = resolved.url else {
            throw ConfigError(
                keyPath: "trigger.url",
                "is not set: no URL was given and the configuration has no trigger.url"
            )
        }
        self.url = url

        var headers = resolved.headers
        for header in overrides.headers ?? [] {
            guard let (name, _) = TriggerSettings.parseHeader(header) else { continue }  // refused above
            headers.removeAll { TriggerSettings.parseHeader($0)?.name.lowercased() == name.lowercased() }
            headers.append(header)
        }
        self.headers = headers

        timeoutSeconds = resolved.timeoutSeconds
        maxAttempts = resolved.maxAttempts
        backoff = resolved.backoff
        // One value from the command line and the other from the file: only together can they disagree.
        if overrides.backoffBaseSeconds != nil || overrides.backoffCapSeconds != nil,
            backoff.capSeconds < backoff.baseSeconds
        {
            throw invalid(
                "backoff_cap_seconds",
                "must be at least the base (\(backoff.baseSeconds)), got \(backoff.capSeconds)"
            )
        }
        let condition = resolved.onlyIf
        guard let onlyIf = Condition(rawValue: condition) else {
            throw invalid("only_if", "must be always or complete, got '\(condition)'")
        }
        self.onlyIf = onlyIf
        withKeys = resolved.withKeys
    }

    // MARK: - Request headers

    /// The headers to send: `Content-Type: application/json` and a `User-Agent`, then the configured ones
    /// (which replace those two if they name them), each `${VARIABLE}` replaced from `environment`.
    ///
    /// A `$` not followed by `{NAME}` (letters, digits and `_`, not starting with a digit) is kept as it is.
    /// The expanded values exist only in the returned list: never log or record them.
    ///
    /// - Throws: `ConfigError` naming the header and the variable when the variable is not set, or naming the
    ///   header when its name or value holds a control character (a CR or LF would start another header).
    package func requestHeaders(environment: [String: String]) throws(ConfigError) -> [(name: String, value: String)] {
        var result: [(name: String, value: String)] = [
            ("Content-Type", "application/json"), ("User-Agent", "fleet-upload/\(FleetVersion.number)"),
        ]
        for (index, header) in headers.enumerated() {
            guard let (name, value) = TriggerSettings.parseHeader(header) else {
                throw ConfigError(keyPath: "trigger.headers[\(index)]", "must be 'Name: value'")
            }
            let expanded = try TriggerOptions.expand(value, header: name, environment: environment)
            guard !(name + expanded).unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            else {
                throw ConfigError(
                    keyPath: "trigger.headers[\(index)]",
                    "header \(name): control characters (such as CR or LF) are not allowed in a header"
                )
            }
            result.removeAll { $0.name.lowercased() == name.lowercased() }
            result.append((name, expanded))
        }
        return result
    }

    /// `value` with every `${NAME}` replaced by the environment variable `NAME`.
    static func expand(_ value: String, header: String, environment: [String: String]) throws(ConfigError) -> String {
        var result = ""
        var rest = value[...]
        while let dollar = rest.range(of: "${") {
            result += rest[..<dollar.lowerBound]
            let afterBrace = rest[dollar.upperBound...]
            guard let close = afterBrace.firstIndex(of: "}"), isVariableName(afterBrace[..<close]) else {
                result += "${"
                rest = afterBrace
                continue
            }
            let name = String(afterBrace[..<close])
            guard let replacement = environment[name] else {
                throw ConfigError(
                    keyPath: "trigger.headers",
                    "header \(header): environment variable \(name) is not set"
                )
            }
            result += replacement
            rest = afterBrace[afterBrace.index(after: close)...]
        }
        return result + rest
    }

    private static func isVariableName(_ name: Substring) -> Bool {
        guard let first = name.first, !first.isNumber else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    // MARK: - URL

    /// `url` without `user:password@`: what may be recorded, logged and printed.
    package var redactedURL: String { TriggerOptions.redacted(url) }

    static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let authorityStart = scheme.upperBound
        let authorityEnd = url[authorityStart...].firstIndex { "/?#".contains($0) } ?? url.endIndex
        guard let at = url[authorityStart..<authorityEnd].lastIndex(of: "@") else { return url }
        return String(url[..<authorityStart]) + url[url.index(after: at)...]
    }
}
