import FleetSystem

/// Quick reads for tests that check a query's numbers: `nil` for NULL or text that is not one, which the
/// expectation then shows. The ledger itself reads with `decode(_:_:_:in:)`.
extension PGResult {
    /// The field as an integer, `nil` for NULL or text that is not one.
    package func int(_ row: Int, _ column: Int) -> Int? { string(row, column).flatMap { Int($0) } }

    /// The field as a boolean, `nil` for NULL or text that is not `t` or `f`.
    package func bool(_ row: Int, _ column: Int) -> Bool? { string(row, column).flatMap { Bool(pgText: $0) } }

    /// The field as a 64-bit integer, `nil` for NULL or text that is not one.
    package func int64(_ row: Int, _ column: Int) -> Int64? { string(row, column).flatMap { Int64($0) } }

    /// The field as a time, `nil` for NULL or text that is not one.
    package func timestamp(_ row: Int, _ column: Int) -> Timestamp? {
        string(row, column).flatMap { Timestamp(postgres: $0) }
    }
}
