internal import CLibPQ

/// The rows of one statement, in libpq's text format.
///
/// The corresponding libpq object is `PGresult`; `deinit` calls `PQclear`.
package final class PGResult {
    private let handle: OpaquePointer
    /// Where the ledger is, for errors.
    let location: String

    init(owning handle: OpaquePointer, location: String) {
        self.handle = handle
        self.location = location
    }

    deinit { PQclear(handle) }

    /// The number of rows returned. The corresponding libpq function is `PQntuples`.
    package var rowCount: Int { Int(PQntuples(handle)) }

    /// The number of columns. The corresponding libpq function is `PQnfields`.
    package var columnCount: Int { Int(PQnfields(handle)) }

    /// The number of rows an INSERT, UPDATE, DELETE or COPY touched. The corresponding libpq function is
    /// `PQcmdTuples`.
    package var affectedRows: Int { Int(String(cString: PQcmdTuples(handle))) ?? 0 }

    /// The text of one field, `nil` for SQL NULL. The corresponding libpq functions are `PQgetisnull` and
    /// `PQgetvalue`.
    package func string(_ row: Int, _ column: Int) -> String? {
        precondition(row < rowCount && column < Int(PQnfields(handle)), "PGResult: field \(row),\(column) out of range")
        if PQgetisnull(handle, Int32(row), Int32(column)) == 1 { return nil }
        return String(cString: PQgetvalue(handle, Int32(row), Int32(column)))
    }

    /// The name of a column as the statement gave it. The corresponding libpq function is `PQfname`.
    package func columnName(_ column: Int) -> String {
        PQfname(handle, Int32(column)).map { String(cString: $0) } ?? "column \(column + 1)"
    }
}
