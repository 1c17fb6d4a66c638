import FleetAWS
import Testing

@testable import FleetCore

/// The part size fits S3's limits for every file size up to 5 TiB, and a larger file is refused before a byte is
/// sent.
struct PartPlanTests {
    static let mebibyte: Int64 = 1 << 20
    static let gibibyte: Int64 = 1 << 30
    static let tebibyte: Int64 = 1 << 40

    @Test(arguments: [
        (Int64(8) * mebibyte, Int64(5) * mebibyte),
        (60 * gibibyte, 5 * mebibyte),
        (156 * gibibyte, 16 * mebibyte),
        (157 * gibibyte, 16 * mebibyte),
        (1 * tebibyte, 16 * mebibyte),
        (5 * tebibyte - 1, 16 * mebibyte),
        (5 * tebibyte, 5 * mebibyte),
        (5 * tebibyte, 5120 * mebibyte),
    ])
    func everyFileUpTo5TiBFitsTenThousandPartsWithinTheSizeLimits(fileSize: Int64, preferred: Int64) throws {
        let plan = try PartPlan(fileSize: fileSize, preferredPartSize: preferred)
        #expect(plan.partCount <= 10_000)
        #expect(plan.partSize * Int64(plan.partCount) >= fileSize)
        #expect(plan.partSize * Int64(plan.partCount - 1) < fileSize, "one part too many")
        #expect(plan.partSize >= 5 * Self.mebibyte && plan.partSize <= 5 * Self.gibibyte)
        #expect(plan.partSize % Self.mebibyte == 0)
        #expect(plan.partSize >= preferred, "never smaller than configured")
        #expect(PartPlan.accepts(partSize: plan.partSize, fileSize: fileSize))
    }

    @Test func theConfiguredSizeIsKeptWhileItFits() throws {
        #expect(
            try PartPlan(fileSize: 100 * Self.mebibyte, preferredPartSize: 16 * Self.mebibyte).partSize == 16
                * Self.mebibyte
        )
        #expect(
            try PartPlan(fileSize: 156 * Self.gibibyte, preferredPartSize: 16 * Self.mebibyte).partSize == 16
                * Self.mebibyte
        )
    }

    @Test func aSizeThatWouldNeedMoreThanTenThousandPartsIsRaisedToTheSmallestMebibyteThatFits() throws {
        // 60 GiB in 5 MiB parts would be 12,288 parts; 7 MiB parts make 8,778.
        let plan = try PartPlan(fileSize: 60 * Self.gibibyte, preferredPartSize: 5 * Self.mebibyte)
        #expect(plan.partSize == 7 * Self.mebibyte)
        #expect(plan.partCount == 8_778)
        // 160 GiB with the 16 MiB default: 17 MiB, 9,638 parts.
        let large = try PartPlan(fileSize: 160 * Self.gibibyte, preferredPartSize: 16 * Self.mebibyte)
        #expect(large.partSize == 17 * Self.mebibyte)
        #expect(large.partCount == 9_638)
    }

    @Test func aFileAbove5TiBIsRefusedAsAPermanentError() {
        #expect {
            try PartPlan(fileSize: 5 * Self.tebibyte + 1, preferredPartSize: 16 * Self.mebibyte)
        } throws: { error in
            guard let error = error as? S3Error else { return false }
            return error.kind == .entityTooLarge && !error.isTransient && error.message.contains("5 TiB")
        }
    }

    @Test func aRecordedPartSizeIsAcceptedOnlyWithinTheLimits() {
        #expect(PartPlan.accepts(partSize: 5 * Self.mebibyte, fileSize: 40 * Self.gibibyte))
        #expect(!PartPlan.accepts(partSize: 5 * Self.mebibyte, fileSize: 60 * Self.gibibyte), "12,288 parts")
        #expect(!PartPlan.accepts(partSize: 4 * Self.mebibyte, fileSize: 8 * Self.mebibyte), "below 5 MiB")
        #expect(!PartPlan.accepts(partSize: 6 * Self.gibibyte, fileSize: 60 * Self.gibibyte), "above 5 GiB")
    }
}
