/// A failure talking to the PostgreSQL ledger.
///
/// `description` names where the ledger is (host, port, database, user) and the server's message, never a
/// password: libpq's messages do not contain one, and the location is rebuilt from `PQconninfo` without it.
package struct LedgerError: Error, CustomStringConvertible, Sendable {
    package enum Kind: String, Sendable {
        /// The server could not be reached or refused the connection.
        case connectionFailed
        /// A statement failed; `sqlState` says why.
        case queryFailed
        /// A migration could not be applied, or an applied one no longer matches its file.
        case migrationFailed
        /// The database holds a schema newer than this binary knows.
        case schemaTooNew
        /// A row held NULL where a value must be, or a value this binary cannot read; `message` names the
        /// table and column.
        case unexpectedValue
    }

    package var kind: Kind
    /// The five-character SQLSTATE, for example `42P01` (undefined table) or `40001` (serialization failure).
    package var sqlState: String?
    /// `host:port/database as user`, for messages.
    package var location: String
    package var message: String

    package init(_ kind: Kind, location: String, message: String, sqlState: String? = nil) {
        self.kind = kind
        self.location = location
        self.message = message
        self.sqlState = sqlState
    }

    /// Serialization failures and deadlocks succeed when the transaction is run again.
    package var isRetryable: Bool { sqlState == "40001" || sqlState == "40P01" }

    package var description: String {
        switch kind {
        case .connectionFailed: "cannot connect to the ledger at \(location): \(message)"
        case .queryFailed: "ledger at \(location): \(message)\(sqlState.map { " (SQLSTATE \($0))" } ?? "")"
        case .migrationFailed: "ledger at \(location): migration failed: \(message)"
        case .schemaTooNew: "ledger at \(location): \(message)"
        case .unexpectedValue: "ledger at \(location): \(message)"
        }
    }
}

extension String {
    /// libpq messages span several lines ("…failed: Connection refused\n\tIs the server running…"); one line
    /// reads better in a log and on stderr.
    package var collapsedToOneLine: String {
        split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
    }
}
