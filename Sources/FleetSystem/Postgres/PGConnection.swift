internal import CLibPQ
import Foundation
import Synchronization

/// One libpq connection, owned by one thread at a time (not Sendable).
///
/// The corresponding libpq object is `PGconn`; `deinit` calls `PQfinish`.
package final class PGConnection {
    private let handle: OpaquePointer
    /// `host:port/database as user`, for messages; never holds the password.
    package let location: String

    private static let processApplicationName = Mutex("fleet-upload")

    /// The name this process's connections show in `pg_stat_activity.application_name` (and PgBouncer passes
    /// on) unless the connection string or `PGAPPNAME` names one: each command sets its own (`fleet-upload`,
    /// `fleet-master-run` …) before it connects.
    package static var applicationName: String {
        get { processApplicationName.withLock { $0 } }
        set { processApplicationName.withLock { $0 = newValue } }
    }

    /// Connects with a URL or conninfo string, passed to libpq unchanged.
    ///
    /// An empty string leaves everything to libpq's `PG*` environment variables and defaults. Unless the
    /// string or `PGCONNECT_TIMEOUT` says otherwise, connecting gives up after 10 seconds.
    /// The corresponding libpq function is `PQconnectdbParams`.
    ///
    /// Nothing is set in the server session after connecting: behind a pooler in transaction mode the next
    /// transaction may run on another server connection, so every setting the tools rely on travels in the
    /// startup packet (`application_name`) or in the statements themselves.
    ///
    /// - Parameter applicationName: The `fallback_application_name`: used unless the string or `PGAPPNAME`
    ///   sets `application_name`.
    /// - Throws: `ConfigError` for a string that can never work (see `PGConnectionString`);
    ///   `LedgerError.Kind.connectionFailed` with the server's or libpq's reason.
    package init(conninfo: String, applicationName: String = PGConnection.applicationName) throws {
        _ = try PGConnectionString(conninfo)
        // Entries before the expanded `dbname` are defaults that the user's string overrides.
        var pairs: [(String, String)] = [("fallback_application_name", applicationName)]
        if ProcessInfo.processInfo.environment["PGCONNECT_TIMEOUT"] == nil { pairs.append(("connect_timeout", "10")) }
        pairs.append(("dbname", conninfo))
        let connection = withCStringArrays(pairs.map(\.0), pairs.map(\.1)) { keywords, values in
            PQconnectdbParams(keywords, values, 1)
        }
        guard let connection else {
            throw LedgerError(.connectionFailed, location: "?", message: "libpq could not allocate a connection")
        }
        let location = PGConnection.describe(connection)
        guard PQstatus(connection) == CONNECTION_OK else {
            let reason = String(cString: PQerrorMessage(connection)).collapsedToOneLine
            PQfinish(connection)  // a failed PGconn must still be finished
            throw LedgerError(.connectionFailed, location: location, message: reason)
        }
        // Server notices ("relation … already exists, skipping") would go to stderr by default.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        self.handle = connection
        self.location = location
        try checkDateStyle()
    }

    deinit { PQfinish(handle) }

    /// Round trips to a server every connection of this process has made so far: each statement, script,
    /// and the start and end of each COPY waits for one answer. With a ledger 100 ms away this, not the
    /// number of files, is what the ledger costs a session in time.
    package static var roundTripsInProcess: Int { roundTrips.load(ordering: .relaxed) }
    private static let roundTrips = Atomic<Int>(0)

    /// Timestamps come back as text, which `Timestamp(postgres:)` reads in ISO form with any zone offset, so
    /// the server's `TimeZone` does not matter. The form is `DateStyle`'s, which the server reports when the
    /// connection starts (`ISO, MDY` unless an administrator changed it): only another form needs a `SET`, which
    /// PgBouncer tracks (it is one of the parameters it replays on every server connection it hands this
    /// client). The corresponding libpq function is `PQparameterStatus`.
    private func checkDateStyle() throws {
        let style = PQparameterStatus(handle, "DateStyle").map { String(cString: $0) } ?? ""
        guard !style.hasPrefix("ISO") else { return }
        try executeScript("SET DateStyle = 'ISO, YMD'")
    }

    /// Whether the connection to the server is gone (the server restarted, the network dropped).
    /// The corresponding libpq function is `PQstatus`.
    package var isBroken: Bool { PQstatus(handle) != CONNECTION_OK }

    /// Connects again with the same parameters; what lived in the old session (an open transaction) is gone.
    /// The corresponding libpq function is `PQreset`.
    ///
    /// - Throws: `LedgerError.Kind.connectionFailed` while the server cannot be reached.
    package func reset() throws {
        PQreset(handle)
        guard PQstatus(handle) == CONNECTION_OK else {
            throw LedgerError(
                .connectionFailed,
                location: location,
                message: String(cString: PQerrorMessage(handle)).collapsedToOneLine
            )
        }
        try checkDateStyle()
    }

    /// The server's version as an integer, for example 150018. The corresponding libpq function is
    /// `PQserverVersion`.
    package var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// The verifier the server stores for `password` of role `user` (SCRAM-SHA-256 unless the server's
    /// `password_encryption` says otherwise), made on this side so the plain text never reaches the server or
    /// its logs. The corresponding libpq function is `PQencryptPasswordConn`.
    ///
    /// - Throws: `LedgerError.Kind.queryFailed` when libpq cannot make it.
    package func encryptPassword(_ password: String, user: String) throws -> String {
        guard let encrypted = PQencryptPasswordConn(handle, password, user, nil) else {
            throw connectionError("the password could not be encrypted")
        }
        defer { PQfreemem(encrypted) }
        return String(cString: encrypted)
    }

    /// Runs one parameterised statement. The corresponding libpq function is `PQexecParams`.
    ///
    /// - Throws: `LedgerError.Kind.queryFailed` with the server's message and SQLSTATE.
    @discardableResult
    package func execute(_ query: PGQuery) throws -> PGResult {
        let result = query.binds.withLibPQParameters { count, values, lengths, formats in
            PQexecParams(handle, query.sql, count, nil, values, lengths, formats, 0)
        }
        return try check(result, expecting: [PGRES_COMMAND_OK, PGRES_TUPLES_OK])
    }

    /// Runs a script of several statements without parameters (migrations). The corresponding libpq function
    /// is `PQexec`.
    package func executeScript(_ sql: String) throws {
        try check(PQexec(handle, sql), expecting: [PGRES_COMMAND_OK, PGRES_TUPLES_OK])
    }

    /// Runs `body` inside `BEGIN … COMMIT`, rolling back if it throws.
    package func transaction<T>(_ body: () throws -> T) throws -> T {
        try executeScript("BEGIN")
        do {
            let value = try body()
            try executeScript("COMMIT")
            return value
        } catch {
            try? executeScript("ROLLBACK")
            throw error
        }
    }

    /// Streams rows into a `COPY … FROM STDIN` statement in text format.
    ///
    /// `body` writes rows through the `PGCopyWriter`; they are sent in chunks of about 256 KiB, so the
    /// number of rows never shows in memory. If `body` throws, the COPY is cancelled and nothing is written.
    /// The corresponding libpq functions are `PQputCopyData` and `PQputCopyEnd`.
    ///
    /// - Returns: the number of rows the server stored.
    @discardableResult
    package func copyIn(_ statement: PGQuery, _ body: (PGCopyWriter) throws -> Void) throws -> Int {
        try check(
            statement.binds.withLibPQParameters { count, values, lengths, formats in
                PQexecParams(handle, statement.sql, count, nil, values, lengths, formats, 0)
            },
            expecting: [PGRES_COPY_IN]
        )
        let writer = PGCopyWriter(connection: self)
        do {
            try body(writer)
            try writer.flush()
        } catch {
            _ = PQputCopyEnd(handle, "cancelled by fleet-upload: \(error)")
            drainResults()
            throw error
        }
        guard PQputCopyEnd(handle, nil) == 1 else { throw connectionError("COPY could not be finished") }
        let result = try check(PQgetResult(handle), expecting: [PGRES_COMMAND_OK])
        drainResults()
        return result.affectedRows
    }

    func putCopyData(_ bytes: UnsafeRawBufferPointer) throws {
        let sent = bytes.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress, Int32($0.count)) }
        guard sent == 1 else { throw connectionError("COPY data could not be sent") }
    }

    // MARK: - Results and errors

    @discardableResult
    private func check(_ result: OpaquePointer?, expecting statuses: [ExecStatusType]) throws -> PGResult {
        PGConnection.roundTrips.add(1, ordering: .relaxed)
        guard let result else { throw connectionError("no result from the server") }
        let owned = PGResult(owning: result, location: location)
        let status = PQresultStatus(result)
        guard statuses.contains(status) else {
            let sqlState = PQresultErrorField(result, CLibPQ_DIAG_SQLSTATE).map { String(cString: $0) }
            var message =
                PQresultErrorField(result, CLibPQ_DIAG_MESSAGE_PRIMARY).map { String(cString: $0) }
                ?? String(cString: PQresultErrorMessage(result)).collapsedToOneLine
            if message.isEmpty { message = String(cString: PQerrorMessage(handle)).collapsedToOneLine }
            if message.isEmpty { message = "unexpected result status \(String(cString: PQresStatus(status)))" }
            throw LedgerError(.queryFailed, location: location, message: message, sqlState: sqlState)
        }
        return owned
    }

    private func connectionError(_ what: String) -> LedgerError {
        let detail = String(cString: PQerrorMessage(handle)).collapsedToOneLine
        return LedgerError(.queryFailed, location: location, message: detail.isEmpty ? what : "\(what): \(detail)")
    }

    private func drainResults() {
        while let result = PQgetResult(handle) { PQclear(result) }
    }

    /// `host:port/database as user` from `PQconninfo`: the options libpq actually used, including those that
    /// came from the environment. The password is never read.
    private static func describe(_ connection: OpaquePointer) -> String {
        var options: [String: String] = [:]
        if let info = PQconninfo(connection) {
            var cursor = info
            while let keyword = cursor.pointee.keyword {
                let key = String(cString: keyword)
                if ["host", "hostaddr", "port", "dbname", "user"].contains(key), let value = cursor.pointee.val {
                    options[key] = String(cString: value)
                }
                cursor += 1
            }
            PQconninfoFree(info)
        }
        let host = options["host"].flatMap { $0.isEmpty ? nil : $0 } ?? options["hostaddr"] ?? "local socket"
        let port = options["port"].flatMap { $0.isEmpty ? nil : ":\($0)" } ?? ""
        let database = options["dbname"] ?? "?"
        let user = options["user"].map { " as \($0)" } ?? ""
        return "\(host)\(port)/\(database)\(user)"
    }
}

/// Rows for `PGConnection.copyIn`, encoded in COPY's text format.
package final class PGCopyWriter {
    private unowned let connection: PGConnection
    private var buffer: [UInt8] = []
    private let flushThreshold = 256 * 1024

    fileprivate init(connection: PGConnection) {
        self.connection = connection
        buffer.reserveCapacity(flushThreshold + 4096)
    }

    /// A field of one COPY row.
    package enum Field {
        case text(String)
        case bytes([UInt8])
        case null
    }

    /// Appends one row; fields are escaped as COPY's text format requires.
    package func row(_ fields: [Field]) throws {
        Self.append(fields, to: &buffer)
        if buffer.count >= flushThreshold { try flush() }
    }

    /// One access to the buffer per row, not one per byte (each access to a class's stored property is
    /// checked for exclusivity).
    private static func append(_ fields: [Field], to buffer: inout [UInt8]) {
        for (index, field) in fields.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: "\t")) }
            switch field {
            case .null:
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(UInt8(ascii: "N"))
            case .text(var text):
                text.withUTF8 { appendEscaped($0, to: &buffer) }
            case .bytes(let bytes):
                // bytea's hex input form, with its backslash escaped for COPY: \\x0a1b…
                buffer.append(contentsOf: "\\\\x".utf8)
                for byte in bytes {
                    buffer.append(hexDigits[Int(byte >> 4)])
                    buffer.append(hexDigits[Int(byte & 0xF)])
                }
            }
        }
        buffer.append(UInt8(ascii: "\n"))
    }

    fileprivate func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try connection.putCopyData($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private static func appendEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to buffer: inout [UInt8]) {
        func needsEscape(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
                || byte == UInt8(ascii: "\r")
        }
        guard bytes.contains(where: needsEscape) else {
            buffer.append(contentsOf: bytes)
            return
        }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\\"): buffer.append(contentsOf: "\\\\".utf8)
            case UInt8(ascii: "\t"): buffer.append(contentsOf: "\\t".utf8)
            case UInt8(ascii: "\n"): buffer.append(contentsOf: "\\n".utf8)
            case UInt8(ascii: "\r"): buffer.append(contentsOf: "\\r".utf8)
            default: buffer.append(byte)
            }
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}

// MARK: - Passing Swift values to libpq

extension Array where Element == PGBind {
    /// Lays the parameters out as `PQexecParams` wants them: C strings for text, raw bytes for binary, NULL
    /// pointers for SQL NULL. The memory lives until `body` returns.
    fileprivate func withLibPQParameters<R>(
        _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R
    ) -> R {
        guard !isEmpty else { return body(0, nil, nil, nil) }
        var storage: [UnsafeMutableRawPointer?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        for bind in self {
            switch bind {
            case .text(let text):
                storage.append(UnsafeMutableRawPointer(strdup(text)))
                lengths.append(0)
                formats.append(0)
            case .bytes(let bytes):
                let memory = malloc(Swift.max(bytes.count, 1))!
                bytes.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
                storage.append(memory)
                lengths.append(Int32(bytes.count))
                formats.append(1)
            case .null:
                storage.append(nil)
                lengths.append(0)
                formats.append(0)
            }
        }
        defer { for pointer in storage { free(pointer) } }
        let values = storage.map { $0.map { UnsafePointer($0.assumingMemoryBound(to: CChar.self)) } }
        return values.withUnsafeBufferPointer { valuesBuffer in
            lengths.withUnsafeBufferPointer { lengthsBuffer in
                formats.withUnsafeBufferPointer { formatsBuffer in
                    body(Int32(count), valuesBuffer.baseAddress, lengthsBuffer.baseAddress, formatsBuffer.baseAddress)
                }
            }
        }
    }
}

/// Two NULL-terminated arrays of C strings, alive while `body` runs (for `PQconnectdbParams`).
private func withCStringArrays<R>(
    _ first: [String],
    _ second: [String],
    _ body: (UnsafePointer<UnsafePointer<CChar>?>, UnsafePointer<UnsafePointer<CChar>?>) -> R
) -> R {
    let a = first.map { UnsafePointer(strdup($0)) } + [nil]
    let b = second.map { UnsafePointer(strdup($0)) } + [nil]
    defer {
        for pointer in a + b { free(UnsafeMutablePointer(mutating: pointer)) }
    }
    return body(a, b)
}
