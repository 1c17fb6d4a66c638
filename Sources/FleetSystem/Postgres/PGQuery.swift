import Foundation

/// One SQL statement with its parameters bound, never spliced into the text.
///
/// Interpolated values become `$1`, `$2`, … and travel separately to `PQexecParams`:
/// ```swift
/// let query: PGQuery = "SELECT id FROM projects WHERE name = \(name)"
/// ```
/// Text without interpolation is taken as written; text assembled at run time must go through
/// `init(unsafeSQL:)`, whose name says what the caller vouches for.
package struct PGQuery: ExpressibleByStringInterpolation, Sendable {
    package private(set) var sql: String
    package private(set) var binds: [PGBind]

    package init(stringLiteral value: String) {
        sql = value
        binds = []
    }

    package init(stringInterpolation: StringInterpolation) {
        sql = stringInterpolation.sql
        binds = stringInterpolation.binds
    }

    /// SQL that was assembled from trusted pieces (identifiers from code, never from input).
    package init(unsafeSQL sql: String, binds: [PGBind] = []) {
        self.sql = sql
        self.binds = binds
    }

    package struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [PGBind] = []

        package init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
        }

        package mutating func appendLiteral(_ literal: String) { sql += literal }

        package mutating func appendInterpolation(_ value: some PGEncodable) {
            binds.append(value.pgBind)
            sql += "$\(binds.count)"
        }

        package mutating func appendInterpolation(_ value: (some PGEncodable)?) {
            binds.append(value?.pgBind ?? .null)
            sql += "$\(binds.count)"
        }
    }
}

/// A parameter as libpq receives it: text (the server infers the type from context), binary bytes, or NULL.
package enum PGBind: Sendable, Equatable {
    case text(String)
    case bytes([UInt8])
    case null
}

/// A Swift value that can be bound as a query parameter.
package protocol PGEncodable {
    var pgBind: PGBind { get }
}

extension String: PGEncodable { package var pgBind: PGBind { .text(self) } }
extension Int: PGEncodable { package var pgBind: PGBind { .text(String(self)) } }
extension Int64: PGEncodable { package var pgBind: PGBind { .text(String(self)) } }
extension Int32: PGEncodable { package var pgBind: PGBind { .text(String(self)) } }
extension Double: PGEncodable { package var pgBind: PGBind { .text(String(self)) } }
extension Bool: PGEncodable { package var pgBind: PGBind { .text(self ? "t" : "f") } }
extension Array: PGEncodable where Element == UInt8 { package var pgBind: PGBind { .bytes(self) } }
extension Timestamp: PGEncodable { package var pgBind: PGBind { .text(iso8601) } }
extension Date: PGEncodable { package var pgBind: PGBind { .text(Timestamp(self).iso8601) } }

/// A `text[]` parameter, sent in PostgreSQL's array literal form: `{"pending","failed"}`.
package struct PGTextArray: PGEncodable {
    package var elements: [String]

    package init(_ elements: [String]) { self.elements = elements }

    package var pgBind: PGBind {
        let quoted = elements.map { element in
            "\"" + element.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                + "\""
        }
        return .text("{" + quoted.joined(separator: ",") + "}")
    }
}
