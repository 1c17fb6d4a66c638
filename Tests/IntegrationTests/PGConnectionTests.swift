import FleetSystem
import FleetTestSupport
import Foundation
import Testing

@testable import FleetCore

struct PGConnectionTests {
    @Test func parametersRoundTripUnchanged() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let connection = try database.connect()

        let text = "it's \"quoted\"; DROP TABLE x; -- é 日本 \\ \t"
        let bytes: [UInt8] = [0, 1, 0xFF, 0x5C, 0x0A]
        let missing: String? = nil
        let rows = try connection.execute(
            "SELECT \(text)::text, \(bytes)::bytea = '\\x0001ff5c0a'::bytea, \(missing)::text IS NULL, \(Int64.max)::bigint"
        )
        #expect(rows.string(0, 0) == text)
        #expect(rows.bool(0, 1) == true)
        #expect(rows.bool(0, 2) == true)
        #expect(rows.int64(0, 3) == Int64.max)
    }

    @Test func binaryArraysArriveAsTheServerReadsTheirTextForm() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let connection = try database.connect()

        let texts: [String?] = ["it's \"quoted\" \\ {a,b}", nil, "", "NULL", "é 日本 \t"]
        let times: [Timestamp?] = [
            Timestamp(microseconds: 1_763_900_000_123_456), nil, Timestamp(microseconds: -1),
            Timestamp(microseconds: 946_684_800_000_000),
        ]
        let rows = try connection.execute(
            """
            SELECT \(PGArray.text(texts))::text[] IS NOT DISTINCT FROM ARRAY[\(texts[0]), NULL, '', 'NULL', \(texts[4])],
                   array_to_string(\(PGArray.bigint([Int64.min, nil, Int64.max]))::bigint[], ',', '-'),
                   array_to_string(\(PGArray.integer([Int(Int32.min), 7, nil]))::integer[], ',', '-'),
                   array_to_string(\(PGArray.boolean([true, false, nil]))::boolean[], ',', '-'),
                   \(PGArray.bytea([[0, 0xFF, 0x5C], nil, []]))::bytea[]
                       IS NOT DISTINCT FROM ARRAY['\\x00ff5c'::bytea, NULL, ''::bytea],
                   \(PGArray.timestamptz(times))::timestamptz[] IS NOT DISTINCT FROM
                       ARRAY[to_timestamp(1763900000.123456), NULL, '1969-12-31 23:59:59.999999+00',
                             '2000-01-01 00:00:00+00']::timestamptz[],
                   cardinality(\(PGArray.text([]))::text[]),
                   (SELECT count(*) FROM unnest(\(PGArray.text([]))::text[], \(PGArray.bigint([]))::bigint[]))
            """
        )
        #expect(rows.bool(0, 0) == true)
        #expect(rows.string(0, 1) == "-9223372036854775808,-,9223372036854775807")
        #expect(rows.string(0, 2) == "-2147483648,7,-")
        #expect(rows.string(0, 3) == "t,f,-")
        #expect(rows.bool(0, 4) == true)
        #expect(rows.bool(0, 5) == true)
        #expect(rows.int64(0, 6) == 0)
        #expect(rows.int64(0, 7) == 0)

        let refused = try #require(throws: LedgerError.self) {
            try connection.execute("SELECT \(PGArray.text(["1"]))::bigint[]")
        }
        #expect(refused.message.contains("instead of expected 20 (bigint)"), "another element type is refused")
    }

    @Test func timestampsKeepMicroseconds() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let connection = try database.connect()

        let time = Timestamp(microseconds: 1_763_900_000_123_456)
        let rows = try connection.execute(
            "SELECT \(time)::timestamptz, \(time)::timestamptz = to_timestamp(1763900000.123456)"
        )
        #expect(rows.timestamp(0, 0) == time)
        #expect(rows.bool(0, 1) == true)
    }

    @Test func timestampsReadTheSameWhateverTheServersZoneAndDateStyle() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        try database.connect().executeScript(
            "ALTER DATABASE \(database.name) SET TimeZone = 'Asia/Kathmandu'; "
                + "ALTER DATABASE \(database.name) SET DateStyle = 'SQL, DMY'"
        )
        let connection = try database.connect()  // starts with the database's settings

        let time = Timestamp(microseconds: 1_763_900_000_123_456)
        let rows = try connection.execute("SELECT \(time)::timestamptz, current_setting('TimeZone')")
        #expect(rows.timestamp(0, 0) == time)
        #expect(rows.string(0, 1) == "Asia/Kathmandu", "the zone is left as the server has it")
    }

    @Test func failedStatementCarriesSQLStateAndServerMessage() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let connection = try database.connect()

        let error = try #require(throws: LedgerError.self) { try connection.execute("SELECT * FROM no_such_table") }
        #expect(error.sqlState == "42P01")
        #expect(error.description.contains("no_such_table"))
    }

    @Test func failedTransactionLeavesNothingBehind() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let connection = try database.connect()
        try connection.executeScript("CREATE TABLE t (x int PRIMARY KEY)")

        #expect(throws: LedgerError.self) {
            try connection.transaction {
                try connection.execute("INSERT INTO t VALUES (1)")
                try connection.execute("INSERT INTO t VALUES (1)")
            }
        }
        #expect(try connection.execute("SELECT count(*) FROM t").int(0, 0) == 0)
    }

    @Test func copyStores300kRows() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let connection = try database.connect()
        try connection.executeScript("CREATE TABLE files (path text, size bigint, mtime timestamptz)")

        let stored = try connection.copyIn("COPY files (path, size, mtime) FROM STDIN") { rows in
            for index in 0..<300_000 {
                try rows.row([
                    .text("dir-\(index % 100)/file-\(index).wav"), .text(String(index)),
                    .text(Timestamp(microseconds: Int64(index) * 1_000_003).iso8601),
                ])
            }
        }
        #expect(stored == 300_000)
        let check = try connection.execute("SELECT count(*), sum(size), count(DISTINCT path) FROM files")
        #expect(check.int(0, 0) == 300_000)
        #expect(check.int64(0, 1) == Int64(300_000 * 299_999 / 2))
        #expect(check.int(0, 2) == 300_000)
    }

    @Test func copyKeepsTabsNewlinesBackslashesNullsAndBytes() throws {
        let database = try TestDatabase()
        defer { database.drop() }
        let connection = try database.connect()
        try connection.executeScript("CREATE TABLE t (n int, s text, b bytea)")

        let awkward = "a\tb\nc\r\\d é"
        try connection.copyIn("COPY t (n, s, b) FROM STDIN") { rows in
            try rows.row([.text("1"), .text(awkward), .bytes([0, 9, 10, 92, 255])])
            try rows.row([.text("2"), .null, .null])
        }
        let rows = try connection.execute("SELECT s, b = '\\x00090a5cff'::bytea, s IS NULL FROM t ORDER BY n")
        #expect(rows.string(0, 0) == awkward)
        #expect(rows.bool(0, 1) == true)
        #expect(rows.bool(1, 2) == true)
    }

    @Test func copyAbandonedByItsWriterStoresNothing() throws {
        struct Stop: Error {}
        let database = try TestDatabase()
        defer { database.drop() }
        let connection = try database.connect()
        try connection.executeScript("CREATE TABLE t (n int)")

        #expect(throws: Stop.self) {
            try connection.copyIn("COPY t (n) FROM STDIN") { rows in
                for index in 0..<100_000 { try rows.row([.text(String(index))]) }
                throw Stop()
            }
        }
        #expect(try connection.execute("SELECT count(*) FROM t").int(0, 0) == 0)
    }

    @Test func unreachableServerNamesWhereItTriedAndNeverThePassword() throws {
        let port = try unusedPort()
        let error = try #require(throws: LedgerError.self) {
            try PGConnection(conninfo: "postgresql://fleet:s3cret-pw@127.0.0.1:\(port)/fleetdb")
        }
        #expect(error.kind == .connectionFailed)
        #expect(error.description.contains("127.0.0.1:\(port)/fleetdb"))
        #expect(!error.description.contains("s3cret-pw"))
        #expect(!error.description.contains("\n"))
    }
}
