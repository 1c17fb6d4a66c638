internal import CLibPQ
import Foundation

/// What a ledger connection string says, read with libpq's own parser before anything connects.
///
/// The string is a `postgres://` URL, a `key=value` conninfo, or (as libpq takes it) a bare database name.
/// Reading it first lets a string that can never work (one libpq cannot parse, an `sslmode` it does not
/// know) be refused as configuration, exit 2, rather than reported as an unreachable ledger; and it tells
/// whether the string holds a password, which a command line shows to every user of the machine.
package struct PGConnectionString: Sendable {
    /// The `sslmode` values libpq accepts.
    package static let sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    /// The options the string sets (keyword to value); nothing from the environment or the defaults.
    package let options: [String: String]

    /// Parses `text` and checks its `sslmode` (or `PGSSLMODE` from `environment` when the string sets none).
    /// The corresponding libpq function is `PQconninfoParse`.
    ///
    /// - Throws: `ConfigError` naming what is wrong; a value of the string is never repeated, so a password
    ///   cannot leak into a message.
    package init(
        _ text: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) {
        var options: [String: String] = [:]
        if Self.isExpanded(text) {
            var error: UnsafeMutablePointer<CChar>?
            guard let info = PQconninfoParse(text, &error) else {
                // libpq's reason quotes the part it could not read, which may be the password: not repeated.
                if let error { PQfreemem(error) }
                throw ConfigError(
                    keyPath: nil,
                    "the ledger's connection string is not valid: libpq cannot parse it (check the percent-encoding "
                        + "of a URL's parts, or the quoting of key=value pairs)"
                )
            }
            var cursor = info
            while let keyword = cursor.pointee.keyword {
                if let value = cursor.pointee.val { options[String(cString: keyword)] = String(cString: value) }
                cursor += 1
            }
            PQconninfoFree(info)
        } else if !text.isEmpty {
            options["dbname"] = text
        }
        self.options = options
        let (mode, origin) =
            options["sslmode"].map { ($0, "the ledger's connection string") }
            ?? environment["PGSSLMODE"].map { ($0, "PGSSLMODE") } ?? ("prefer", "")
        guard Self.sslModes.contains(mode) else {
            throw ConfigError(
                keyPath: nil,
                "\(origin): sslmode '\(mode)' is not one of \(Self.sslModes.joined(separator: ", "))"
            )
        }
    }

    /// Whether the string itself holds a password (not `PGPASSWORD` or a password file).
    package var hasPassword: Bool { !(options["password"] ?? "").isEmpty }

    /// libpq reads a string as options when it holds `=` or starts with a URI scheme; otherwise it is the
    /// name of a database.
    private static func isExpanded(_ text: String) -> Bool {
        text.contains("=") || text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
    }
}
