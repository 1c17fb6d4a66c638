import Testing

@testable import FleetCore

struct FormattingTests {
    private static let byteCases: [(Int64, String)] = [
        (0, "0 B"), (512, "512 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (1536, "1.50 KiB"), (10_240, "10.0 KiB"),
        (102_400, "100 KiB"), (1_320_702_444, "1.23 GiB"), (5_497_558_138_880, "5.00 TiB"),
        (3_458_764_513_820_540_928, "3072 PiB"),  // 3 EiB: PiB is the largest unit
    ]

    @Test(arguments: byteCases)
    func bytesPicksUnitAndPrecision(count: Int64, expected: String) {
        #expect(Formatting.bytes(count) == expected)
    }

    private static let roundingCases: [(Int64, String)] = [
        (1_048_575, "1.00 MiB"),  // 1023.999 KiB must not print as "1024 KiB"
        (1_048_064, "1.00 MiB"),  // 1023.5 KiB
        (1_047_552, "1023 KiB"),
        (102_394, "100 KiB"),  // 99.99 KiB rounds to 100, printed without a decimal
        (10_235, "10.0 KiB"),  // 9.995 KiB rounds to 10.0, printed with one decimal
    ]

    @Test(arguments: roundingCases)
    func bytesNeverPrintsARoundedValueOutOfItsRange(count: Int64, expected: String) {
        #expect(Formatting.bytes(count) == expected)
    }

    private static let countCases: [(Int, String)] = [
        (0, "0"), (7, "7"), (999, "999"), (1000, "1,000"), (300_000, "300,000"), (1_234_567, "1,234,567"),
        (-1_234_567, "-1,234,567"), (-999, "-999"), (Int.min, "-9,223,372,036,854,775,808"),
    ]

    @Test(arguments: countCases)
    func countGroupsThousands(number: Int, expected: String) {
        #expect(Formatting.count(number) == expected)
    }

    private static let durationCases: [(Double, String)] = [
        (0, "0.0 s"), (2.4, "2.4 s"), (59.9, "59.9 s"), (59.97, "1 min 00 s"), (60, "1 min 00 s"),
        (185, "3 min 05 s"), (3599.4, "59 min 59 s"), (3599.6, "1 h 00 min"), (3720, "1 h 02 min"),
        (90_000, "25 h 00 min"),
    ]

    @Test(arguments: durationCases)
    func durationReadsNaturally(seconds: Double, expected: String) {
        #expect(Formatting.duration(seconds) == expected)
    }
}
