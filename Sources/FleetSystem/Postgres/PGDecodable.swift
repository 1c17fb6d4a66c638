import Foundation

/// A Swift type a field of libpq's text format decodes into.
package protocol PGDecodable {
    /// The value `text` holds, or `nil` when it is not one.
    init?(pgText text: String)
}

extension String: PGDecodable {
    package init?(pgText text: String) { self = text }
}

extension Int: PGDecodable {
    package init?(pgText text: String) { self.init(text) }
}

extension Int64: PGDecodable {
    package init?(pgText text: String) { self.init(text) }
}

extension Double: PGDecodable {
    package init?(pgText text: String) { self.init(text) }
}

extension Bool: PGDecodable {
    package init?(pgText text: String) {
        switch text {
        case "t": self = true
        case "f": self = false
        default: return nil
        }
    }
}

extension Timestamp: PGDecodable {
    package init?(pgText text: String) { self.init(postgres: text) }
}

/// Enums stored as their raw text: a value this binary does not know is an error, never a default.
extension PGDecodable where Self: RawRepresentable, RawValue == String {
    package init?(pgText text: String) { self.init(rawValue: text) }
}

extension PGResult {
    /// Decodes a field that must hold a value.
    ///
    /// - Parameters:
    ///   - type: What the field holds.
    ///   - row: The row, from 0.
    ///   - column: The column, from 0.
    ///   - table: The table (or query) the row comes from, for the error.
    /// - Throws: `LedgerError.Kind.unexpectedValue` naming the table and column, for NULL or text that is not
    ///   a `type`.
    package func decode<T: PGDecodable>(_ type: T.Type, _ row: Int, _ column: Int, in table: String) throws -> T {
        guard let value = try decodeIfPresent(type, row, column, in: table) else {
            throw unexpected(column, in: table, "is NULL where a value must be")
        }
        return value
    }

    /// Decodes a field that may be NULL.
    ///
    /// - Throws: `LedgerError.Kind.unexpectedValue` naming the table and column, for text that is not a `type`.
    package func decodeIfPresent<T: PGDecodable>(
        _ type: T.Type,
        _ row: Int,
        _ column: Int,
        in table: String
    ) throws -> T? {
        guard let text = string(row, column) else { return nil }
        guard let value = T(pgText: text) else {
            throw unexpected(column, in: table, "holds '\(text.prefix(64))', not a \(T.self) this binary knows")
        }
        return value
    }

    private func unexpected(_ column: Int, in table: String, _ problem: String) -> LedgerError {
        LedgerError(.unexpectedValue, location: location, message: "\(table).\(columnName(column)) \(problem)")
    }
}
