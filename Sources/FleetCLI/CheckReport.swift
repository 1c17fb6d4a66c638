import ArgumentParser
import FleetCore
import Foundation
import Logging

/// `upload --check`'s checklist, for people or as JSON.
package enum CheckReport {
    /// Runs the checks, prints the checklist and, when one failed, its one-line reason on stderr with exit 3.
    package static func run(
        _ config: FleetConfig,
        databaseURL: String,
        json: Bool = false,
        command: String,
        logger: Logger
    ) throws {
        let items = Preflight(config: config, databaseURL: databaseURL, logger: logger).run()
        standardOutput(json ? CheckReport.json(items) : CheckReport.text(items))
        if let failure = CheckReport.failure(items) {
            standardError("\(command): \(failure)")
            throw ExitCode(ExitStatus.environment.rawValue)
        }
    }

    package static func text(_ items: [PreflightItem]) -> String {
        let width = max(14, (items.map(\.name.count).max() ?? 0) + 2)
        return items.map { item in
            let mark =
                switch item.outcome {
                case .passed: "✔"
                case .failed: "✘"
                case .skipped: "–"
                }
            var line = "  \(mark) " + item.name.padding(toLength: width, withPad: " ", startingAt: 0) + item.detail
            if let hint = item.hint, item.outcome == .failed {
                line += "\n    " + String(repeating: " ", count: width) + "→ " + hint
            }
            return line
        }.joined(separator: "\n")
    }

    package static func json(_ items: [PreflightItem]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(items)) ?? Data(), as: UTF8.self)
    }

    /// The one-line reason for stderr: the first failure and what to do.
    package static func failure(_ items: [PreflightItem]) -> String? {
        guard let failed = items.first(where: { $0.outcome == .failed }) else { return nil }
        return "check failed: \(failed.name): \(failed.detail)\(failed.hint.map { " — \($0)" } ?? "")"
    }
}
