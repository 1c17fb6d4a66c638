import FleetSystem
import Testing

@testable import FleetCore

struct TriggerOptionsTests {
    @Test func defaultsApplyWithoutConfiguration() throws {
        let options = try TriggerOptions(settings: nil, overrides: TriggerSettings(url: "https://hooks.example/in"))

        #expect(options.url == "https://hooks.example/in")
        #expect(options.headers.isEmpty)
        #expect(options.timeoutSeconds == 30)
        #expect(options.maxAttempts == 5)
        #expect(options.backoff == Backoff(baseSeconds: 1, capSeconds: 30))
        #expect(options.onlyIf == .always)
        #expect(options.withKeys == false)
    }

    @Test func commandLineValuesReplaceConfiguredOnesAndHeadersAdd() throws {
        let configured = TriggerSettings(
            url: "https://a.example/hook",
            headers: ["Authorization: Bearer ${TOKEN}", "X-Team: survey"],
            timeoutSeconds: 10,
            maxAttempts: 3,
            backoffBaseSeconds: 2,
            backoffCapSeconds: 8,
            onlyIf: "complete",
            withKeys: true
        )

        let options = try TriggerOptions(
            settings: configured,
            overrides: TriggerSettings(
                url: "http://b.example/",
                headers: ["x-team: mapping", "X-Run: 7"],
                timeoutSeconds: 5
            )
        )

        #expect(options.url == "http://b.example/")
        #expect(options.headers == ["Authorization: Bearer ${TOKEN}", "x-team: mapping", "X-Run: 7"])
        #expect(options.timeoutSeconds == 5)
        #expect(options.maxAttempts == 3)
        #expect(options.backoff == Backoff(baseSeconds: 2, capSeconds: 8))
        #expect(options.onlyIf == .complete)
        #expect(options.withKeys == true)
    }

    @Test func missingURLIsAConfigurationError() {
        let error = #expect(throws: ConfigError.self) {
            try TriggerOptions(settings: TriggerSettings(maxAttempts: 2))
        }
        #expect(error?.keyPath == "trigger.url")
    }

    @Test(arguments: [
        (TriggerSettings(url: "ftp://files.example/"), "trigger.url"),
        (TriggerSettings(headers: ["no colon here"]), "trigger.headers"),
        (TriggerSettings(timeoutSeconds: 0), "trigger.timeout_seconds"),
        (TriggerSettings(maxAttempts: 101), "trigger.max_attempts"),
        (TriggerSettings(onlyIf: "sometimes"), "trigger.only_if"),
        (TriggerSettings(backoffBaseSeconds: -1), "trigger.backoff_base_seconds"),
        (TriggerSettings(backoffCapSeconds: 0.5), "trigger.backoff_cap_seconds"),
    ])
    func commandLineValuesOutOfRangeNameTheirKey(overrides: TriggerSettings, keyPath: String) {
        let error = #expect(throws: ConfigError.self) {
            try TriggerOptions(settings: TriggerSettings(url: "http://127.0.0.1/"), overrides: overrides)
        }
        #expect(error?.keyPath == keyPath)
        #expect(error?.origin == "command line")
    }

    @Test func requestHeadersStartWithJSONAndAUserAgentThatConfiguredOnesReplace() throws {
        let options = try TriggerOptions(
            settings: TriggerSettings(url: "http://127.0.0.1/", headers: ["user-agent: pipeline/2", "X-Empty:"])
        )

        let headers = try options.requestHeaders(environment: [:])

        #expect(headers.map(\.name) == ["Content-Type", "user-agent", "X-Empty"])
        #expect(headers.map(\.value) == ["application/json", "pipeline/2", ""])
    }

    @Test func variablesInHeaderValuesComeFromTheEnvironment() throws {
        let options = try TriggerOptions(
            settings: TriggerSettings(url: "http://127.0.0.1/", headers: ["Authorization: Bearer ${TRIGGER_TOKEN}"])
        )

        let headers = try options.requestHeaders(environment: ["TRIGGER_TOKEN": "s3cr3t"])

        #expect(headers.last?.name == "Authorization")
        #expect(headers.last?.value == "Bearer s3cr3t")
        #expect(options.headers == ["Authorization: Bearer ${TRIGGER_TOKEN}"])
    }

    @Test(arguments: [
        (["X-Run: ${RUN}"], ["RUN": "7\r\nX-Injected: 1"]),
        (["X-Run: ${RUN}"], ["RUN": "7\nX-Injected: 1"]),
        (["X-Run: a\u{1B}b"], [:]),
        (["X-Run: a\u{7F}b"], [:]),
    ])
    func controlCharactersInAHeaderAreRefusedNamingIt(headers: [String], environment: [String: String]) throws {
        let options = try TriggerOptions(settings: TriggerSettings(url: "http://127.0.0.1/", headers: headers))

        let error = #expect(throws: ConfigError.self) { try options.requestHeaders(environment: environment) }

        #expect(error?.description.contains("header X-Run: control characters") == true)
        #expect(error?.description.contains("X-Injected") == false)
    }

    @Test func unsetVariableNamesTheHeaderAndTheVariableButNoValue() throws {
        let options = try TriggerOptions(
            settings: TriggerSettings(
                url: "http://127.0.0.1/",
                headers: ["X-Key: ${SET_ONE}", "Authorization: Bearer ${MISSING_TOKEN}"]
            )
        )

        let error = #expect(throws: ConfigError.self) {
            try options.requestHeaders(environment: ["SET_ONE": "visible-secret"])
        }

        let text = error?.description ?? ""
        #expect(text.contains("Authorization"))
        #expect(text.contains("MISSING_TOKEN"))
        #expect(!text.contains("visible-secret"))
    }

    @Test(arguments: [
        ("Bearer ${TOKEN}", "Bearer abc"),
        ("${A}${B}-${A}", "12-1"),
        ("${EMPTY}", ""),
        ("price $5 and $HOME", "price $5 and $HOME"),
        ("${not a name} ${1X} ${", "${not a name} ${1X} ${"),
        ("${A", "${A"),
        ("}{${B}}", "}{2}"),
    ])
    func expansionReplacesOnlyWellFormedVariables(value: String, expected: String) throws {
        let environment = ["TOKEN": "abc", "A": "1", "B": "2", "EMPTY": "", "HOME": "/root"]
        #expect(try TriggerOptions.expand(value, header: "X", environment: environment) == expected)
    }

    @Test(arguments: [
        ("https://user:pa%40ss@hooks.example:8443/in?x=1", "https://hooks.example:8443/in?x=1"),
        ("http://token@127.0.0.1/", "http://127.0.0.1/"),
        ("http://127.0.0.1:9/path@with-at", "http://127.0.0.1:9/path@with-at"),
        ("https://hooks.example/in?mail=a@b", "https://hooks.example/in?mail=a@b"),
        ("https://hooks.example", "https://hooks.example"),
    ])
    func recordedURLLeavesOutTheUserInformation(url: String, expected: String) {
        #expect(TriggerOptions.redacted(url) == expected)
    }
}
