import FleetAWS
import FleetLedger
import FleetSystem
import Foundation

/// Whether an object in the bucket is a local file's copy, shown from what S3 keeps about it (HeadObject's
/// size, ETag and SHA-256 checksum), never from a name or a date.
///
/// An object sent in one request is the file's copy when its SHA-256 checksum equals the file's, or, without
/// one, when its ETag (the MD5 of its bytes) equals the file's MD5. An object S3 assembled from parts carries
/// `-N` checksums: its SHA-256 is `base64(sha256(part₁ ‖ … ‖ partₙ))-N` over the raw SHA-256 digests of its
/// parts and its ETag `hex(md5(md5₁ ‖ … ‖ md5ₙ))-N` over the raw MD5s; both are recomputed from the parts
/// the ledger recorded as S3 acknowledged them, and each recorded part's checksum must equal the file's bytes
/// at its place. A multipart object whose parts were not recorded cannot be confirmed.
package enum ObjectVerification {
    /// The file's SHA-256 (hex) when `object` is provably the copy of its first `size` bytes; nil when that
    /// cannot be shown (another object, a checksum S3 did not keep, a file that cannot be read).
    ///
    /// - Parameter parts: The parts the upload that may have made the object sent, as recorded.
    package static func sha256(
        ofCopyOf file: LocalFile,
        size: Int64,
        object: ObjectInfo,
        parts: [RecordedPart] = []
    ) -> String? {
        guard object.size == size else { return nil }
        if object.isMultipart {
            guard isAssembled(object, from: parts) else { return nil }
            let whole = SHA256()
            var offset: Int64 = 0
            for part in parts.sorted(by: { $0.partNumber < $1.partNumber }) {
                guard let expected = part.checksumSHA256,
                    let digest = try? file.sha256(offset: offset, length: part.size, also: whole),
                    digest.base64 == expected
                else { return nil }
                offset += part.size
            }
            return offset == size ? whole.finalize().hexString : nil
        }
        if let checksum = object.checksumSHA256 {
            guard let digest = try? file.sha256(offset: 0, length: size) else { return nil }
            return digest.base64 == checksum ? digest.hexString : nil
        }
        // No checksum kept: the ETag of a single-request object is the MD5 of its bytes. Only small files are
        // read whole to compare it.
        guard size <= S3Client.inMemoryUploadLimit, let bytes = try? file.contents(length: size),
            MD5.digest(bytes).hexString == unquoted(object.etag)
        else { return nil }
        return SHA256.hex(of: bytes)
    }

    /// Whether S3 assembled `object` from exactly these parts (numbered 1…N, their sizes adding up to the
    /// object's): its composite SHA-256 checksum, or without one its composite ETag, equals the one the parts
    /// give.
    package static func isAssembled(_ object: ObjectInfo, from parts: [RecordedPart]) -> Bool {
        let sorted = parts.sorted { $0.partNumber < $1.partNumber }
        guard !sorted.isEmpty, sorted.map(\.partNumber) == Array(1...sorted.count),
            sorted.reduce(0, { $0 + $1.size }) == object.size
        else { return false }
        if let checksum = object.checksumSHA256, checksum.contains("-") {
            let partChecksums = sorted.compactMap(\.checksumSHA256)
            return partChecksums.count == sorted.count && compositeChecksum(partChecksums) == checksum
        }
        let etag = unquoted(object.etag)
        return etag.contains("-") && compositeETag(sorted.map(\.etag)) == etag
    }

    /// `base64(sha256(raw₁ ‖ … ‖ rawₙ))-N` from the parts' base64 SHA-256 checksums; nil when one is not base64.
    package static func compositeChecksum(_ partChecksums: [String]) -> String? {
        let hash = SHA256()
        for checksum in partChecksums {
            guard let raw = Data(base64Encoded: checksum), raw.count == 32 else { return nil }
            hash.update(Array(raw))
        }
        return hash.finalize().base64 + "-\(partChecksums.count)"
    }

    /// `hex(md5(raw₁ ‖ … ‖ rawₙ))-N` from the parts' ETags (hex MD5s, quoted or not); nil when one is not an MD5.
    package static func compositeETag(_ partETags: [String]) -> String? {
        var raw: [UInt8] = []
        for etag in partETags {
            guard let bytes = hexBytes(unquoted(etag)), bytes.count == 16 else { return nil }
            raw += bytes
        }
        return MD5.digest(raw).hexString + "-\(partETags.count)"
    }

    /// An ETag without its quotes, in lower case.
    static func unquoted(_ etag: String) -> String {
        etag.trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased()
    }

    private static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
