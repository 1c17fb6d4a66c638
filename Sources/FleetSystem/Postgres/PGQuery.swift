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

/// A `text[]` parameter, sent in PostgreSQL's array literal form: `{"pending","failed",NULL}`.
///
/// Cast in the statement to an array of another type (bigint, timestamptz, bytea) it carries a column of any
/// type whose text form the server reads; several of them, unnested together, turn a batch of rows into one
/// statement's input, with nothing staged in the server session. The server parses the text of every element:
/// the large batches of the hot path travel as `PGArray` instead.
package struct PGTextArray: PGEncodable {
    package var elements: [String?]

    package init(_ elements: [String]) { self.elements = elements }

    /// Elements that may be SQL NULL.
    package init(_ elements: [String?]) { self.elements = elements }

    package var pgBind: PGBind {
        var literal = "{"
        literal.reserveCapacity(elements.reduce(2) { $0 + ($1?.utf8.count ?? 4) + 3 })
        for (index, element) in elements.enumerated() {
            if index > 0 { literal += "," }
            guard let element else {
                literal += "NULL"
                continue
            }
            literal += "\""
            if element.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") }) {
                for character in element.unicodeScalars {
                    if character == "\\" || character == "\"" { literal += "\\" }
                    literal.unicodeScalars.append(character)
                }
            } else {
                literal += element
            }
            literal += "\""
        }
        return .text(literal + "}")
    }
}
