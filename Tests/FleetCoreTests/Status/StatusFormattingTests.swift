import FleetSystem
import Testing

@testable import FleetCore

/// The time helpers `master status` adds to `Formatting`.
struct StatusFormattingTests {
    private static let agoCases: [(Double, String)] = [
        (-30, "just now"), (0, "just now"), (0.99, "just now"), (1, "1s ago"), (59.9, "59s ago"), (60, "1m ago"),
        (3599, "59m ago"), (3600, "1h ago"), (86_399, "23h ago"), (86_400, "1d ago"), (40 * 86_400 + 5, "40d ago"),
    ]

    @Test(arguments: agoCases)
    func agoUsesTheLargestWholeUnit(seconds: Double, expected: String) {
        #expect(Formatting.ago(seconds) == expected)
    }

    @Test func utcPrintsTheSecondWithoutFractionOrZone() {
        #expect(Formatting.utc(Timestamp(microseconds: 1_763_906_709_999_999)) == "2025-11-23 14:05:09")
        #expect(Formatting.utc(Timestamp(microseconds: 0)) == "1970-01-01 00:00:00")
        #expect(Formatting.utc(Timestamp(microseconds: -1)) == "1969-12-31 23:59:59")
    }
}
