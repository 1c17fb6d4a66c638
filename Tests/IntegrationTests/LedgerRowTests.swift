import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetLedger

/// A row the ledger cannot read is an error that names the table and column, never a value made up for it.
struct LedgerRowTests {
    @Test func unknownSessionStatusIsAnErrorNamingTheColumn() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let id = try openTestSession(ledger)
        // A status a newer binary might write: the schema's check would refuse it, so it goes first.
        let connection = try database.connect()
        try connection.execute("ALTER TABLE sync_sessions DROP CONSTRAINT sync_sessions_status_check")
        try connection.execute("UPDATE sync_sessions SET status = 'paused', finished_at = now() WHERE id = \(id)")

        let error = try expectUnexpectedValue { _ = try ledger.session(id) }
        #expect(error.message.contains("sync_sessions.status"))
        #expect(error.message.contains("'paused'"))
        let fleetError = try expectUnexpectedValue { _ = try ledger.fleetStatus(StatusFilter()) }
        #expect(fleetError.message.contains("sync_sessions.status"))
    }

    @Test func nullInAColumnThatMustHoldAValueIsAnErrorNamingTheColumn() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let id = try openTestSession(ledger)
        let connection = try database.connect()
        try connection.execute("ALTER TABLE sync_sessions ALTER COLUMN kind DROP NOT NULL")
        try connection.execute("UPDATE sync_sessions SET kind = NULL WHERE id = \(id)")

        let error = try expectUnexpectedValue { _ = try ledger.session(id) }
        #expect(error.message == "sync_sessions.kind is NULL where a value must be")
        let fleetError = try expectUnexpectedValue { _ = try ledger.fleetStatus(StatusFilter()) }
        #expect(fleetError.message == "sync_sessions.kind is NULL where a value must be")
    }

    @Test func nullInARetryRoundIsAnErrorNamingItsTable() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let id = try openTestSession(ledger)
        _ = try ledger.startRetryRound(sessionID: id)
        let connection = try database.connect()
        try connection.execute("ALTER TABLE retry_rounds ALTER COLUMN started_at DROP NOT NULL")
        try connection.execute("UPDATE retry_rounds SET started_at = NULL WHERE session_id = \(id)")

        let error = try expectUnexpectedValue { _ = try ledger.sessionDetail(id, failedLimit: 10) }
        #expect(error.message == "retry_rounds.started_at is NULL where a value must be")
    }

    @Test func nullWhereTheSchemaAllowsItIsNoError() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let ledger = try database.ledger()
        let id = try openTestSession(ledger)
        let connection = try database.connect()
        try connection.execute("UPDATE sync_sessions SET device_id = NULL, config_id = NULL WHERE id = \(id)")

        let session = try #require(try ledger.session(id))
        #expect(session.device == nil)
        #expect(session.deviceID == nil)
        #expect(session.configID == nil)
        #expect(session.status == .running)
        let device = try #require(try ledger.fleetStatus(StatusFilter()).devices.first)
        #expect(device.lastHeartbeatAt == nil)
        #expect(device.heartbeatAgeSeconds == nil)
    }

    // MARK: - Helpers

    /// The `LedgerError.Kind.unexpectedValue` that `body` throws.
    private func expectUnexpectedValue(
        sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () throws -> Void
    ) throws -> LedgerError {
        let error = try #require(throws: LedgerError.self, sourceLocation: sourceLocation) { try body() }
        #expect(error.kind == .unexpectedValue, "\(error)", sourceLocation: sourceLocation)
        return error
    }
}
