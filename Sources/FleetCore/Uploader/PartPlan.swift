import FleetAWS

/// How a large file is cut into parts within S3's limits: at most 10,000 parts, each 5 MiB to 5 GiB (the last
/// may be smaller), and an object of at most 5 TiB.
///
/// The configured part size is used while it fits; a file it would cut into more than 10,000 parts gets the
/// smallest whole number of MiB that does (a 60 GiB file with 5 MiB parts is sent in 7 MiB parts, 8,778 of them, not 12,288
/// parts S3 refuses at the end). The part size chosen is recorded with the upload, so a resumed upload goes on
/// with the same one.
package struct PartPlan: Sendable, Equatable {
    package static let maximumParts = 10_000
    package static let minimumPartSize: Int64 = 5 * mebibyte
    package static let maximumPartSize: Int64 = 5 * 1024 * mebibyte
    package static let maximumObjectSize: Int64 = 5 * 1024 * 1024 * mebibyte
    static let mebibyte: Int64 = 1024 * 1024

    package var partSize: Int64
    package var partCount: Int

    /// - Throws: `S3Error` `.entityTooLarge` (permanent) for a file above 5 TiB, which S3 cannot store.
    package init(fileSize: Int64, preferredPartSize: Int64) throws(S3Error) {
        guard fileSize <= Self.maximumObjectSize else {
            throw S3Error(
                .entityTooLarge,
                "\(fileSize) bytes is more than the 5 TiB (\(Self.maximumObjectSize) bytes) S3 stores in one object"
            )
        }
        let fitting = (fileSize + Int64(Self.maximumParts) - 1) / Int64(Self.maximumParts)
        let rounded = (fitting + Self.mebibyte - 1) / Self.mebibyte * Self.mebibyte
        partSize = min(max(preferredPartSize, rounded, Self.minimumPartSize), Self.maximumPartSize)
        partCount = fileSize == 0 ? 1 : Int((fileSize + partSize - 1) / partSize)
    }

    /// Whether `partSize` (as an earlier run recorded it) cuts a file of `fileSize` bytes into parts S3 accepts.
    package static func accepts(partSize: Int64, fileSize: Int64) -> Bool {
        (minimumPartSize...maximumPartSize).contains(partSize)
            && (fileSize + partSize - 1) / partSize <= Int64(maximumParts)
    }
}
