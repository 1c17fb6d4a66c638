import Foundation
import Testing

@testable import FleetSystem

struct PGQueryTests {
    @Test func interpolatedValuesBecomeNumberedParameters() {
        let name = "fleet'; DROP TABLE projects; --"
        let limit = 5
        let query: PGQuery = "SELECT id FROM projects WHERE name = \(name) LIMIT \(limit)"
        #expect(query.sql == "SELECT id FROM projects WHERE name = $1 LIMIT $2")
        #expect(query.binds == [.text("fleet'; DROP TABLE projects; --"), .text("5")])
    }

    @Test func literalWithoutInterpolationHasNoBinds() {
        let query: PGQuery = "SELECT 1"
        #expect(query.sql == "SELECT 1")
        #expect(query.binds.isEmpty)
    }

    @Test func nilBindsAsNull() {
        let missing: String? = nil
        let present: Int64? = 42
        let query: PGQuery = "UPDATE t SET a = \(missing), b = \(present)"
        #expect(query.sql == "UPDATE t SET a = $1, b = $2")
        #expect(query.binds == [.null, .text("42")])
    }

    @Test func eachTypeBindsAsPostgresReadsIt() {
        let bytes: [UInt8] = [0x00, 0xFF]
        let flag = true
        let off = false
        let ratio = 0.25
        let small: Int32 = -7
        let time = Timestamp(microseconds: 1_700_641_021_636_486)
        let query: PGQuery = "\(bytes) \(flag) \(off) \(ratio) \(small) \(time) \(time.date)"
        #expect(query.sql == "$1 $2 $3 $4 $5 $6 $7")
        #expect(
            query.binds == [
                .bytes([0x00, 0xFF]), .text("t"), .text("f"), .text("0.25"), .text("-7"),
                .text("2023-11-22 08:17:01.636486+00"), .text("2023-11-22 08:17:01.636486+00"),
            ]
        )
    }

    @Test func sameValueTwiceGetsTwoParameters() {
        let id = 9
        let query: PGQuery = "SELECT \(id), \(id)"
        #expect(query.sql == "SELECT $1, $2")
        #expect(query.binds == [.text("9"), .text("9")])
    }

    @Test func numberingPassesNine() {
        let v = 1
        let query: PGQuery = "\(v)\(v)\(v)\(v)\(v)\(v)\(v)\(v)\(v)\(v)\(v)"
        #expect(query.sql == "$1$2$3$4$5$6$7$8$9$10$11")
        #expect(query.binds.count == 11)
    }

    @Test func unsafeSQLIsTakenAsWritten() {
        let query = PGQuery(unsafeSQL: "SELECT $1::int + 1", binds: [.text("41")])
        #expect(query.sql == "SELECT $1::int + 1")
        #expect(query.binds == [.text("41")])
    }

    @Test func textArrayQuotesEveryElementAndWritesNilAsNull() {
        let array = PGTextArray(["plain", #"say "hi""#, #"back\slash"#, nil, "", "NULL"])
        #expect(array.pgBind == .text(#"{"plain","say \"hi\"","back\\slash",NULL,"","NULL"}"#))
    }

    @Test func binaryArrayIsArraySendsLayout() {
        let header: [UInt8] = [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 2, 0, 0, 0, 1]
        #expect(
            PGArray.bigint([-2, nil]).pgBind
                == .bytes(header + [0, 0, 0, 8, 255, 255, 255, 255, 255, 255, 255, 254, 255, 255, 255, 255])
        )
        #expect(
            PGArray.text(["é"]).pgBind
                == .bytes([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0xC3, 0xA9])
        )
        #expect(
            PGArray.timestamptz([Timestamp(microseconds: 946_684_800_000_001)]).pgBind
                == .bytes(
                    [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, 160, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]
                )
        )
        #expect(PGArray.integer([]).pgBind == .bytes([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23]), "no dimension when empty")
    }
}
