import FleetSystem
import Foundation

/// The ledger's JSON objects write every key they have: a value that is nil is written `null`, never left out
/// (the generic `encode(_:forKey:)` does that for an optional, where a synthesized conformance would call
/// `encodeIfPresent`). Times are RFC 3339 text in UTC with milliseconds.
extension KeyedEncodingContainer {
    /// `time` as RFC 3339 in UTC with milliseconds.
    mutating func encode(_ time: Timestamp, forKey key: Key) throws {
        try encode(time.rfc3339, forKey: key)
    }

    /// `time` as RFC 3339 in UTC with milliseconds, or `null`.
    mutating func encode(_ time: Timestamp?, forKey key: Key) throws {
        try encode(time?.rfc3339, forKey: key)
    }
}

/// Rounded to milliseconds (or thousandths), as the session objects write their duration.
func thousandths(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
