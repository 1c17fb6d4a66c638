import FleetAWS
import FleetLedger
import FleetSystem
import Foundation
import Testing

@testable import FleetCore

/// An object is confirmed as a file's copy from what S3 keeps about it; a multipart object from the composite
/// checksum or ETag of the parts the ledger recorded. The expected values were computed independently (Python's
/// hashlib) for a 5 MiB part of `a` followed by a 1000-byte part of `b`, and are what S3 (and SeaweedFS)
/// report for that object.
struct ObjectVerificationTests {
    static let partSize: Int64 = 5 * 1024 * 1024
    static let size = partSize + 1000
    static let wholeSHA256 = "f5870481c599d7534c475591e5e8ab0807bf9d52b4924c137f160c706ea5d5e2"
    static let compositeChecksum = "gzKREhG1RwKmrTCIEhem1Qh4SLYssbnaSjmwJsKJ6aA=-2"
    static let compositeETag = "8c6f96fe400c627d9394af6161f5921d-2"
    static let parts = [
        RecordedPart(
            partNumber: 1,
            etag: "\"79b281060d337b9b2b84ccf390adcf74\"",
            checksumSHA256: "oplo+tLngqqfIECjXwWtuX7Yl56x9XLIyOp4Y34nXzw=",
            size: partSize
        ),
        RecordedPart(
            partNumber: 2,
            etag: "\"c73c16de8912c313c06ac38b9961e806\"",
            checksumSHA256: "9vEY4SDlK+C9DP3yeUzRLAdobMhxI1rC8RRZN45tI1s=",
            size: 1000
        ),
    ]

    /// The two-part file, in a directory of its own.
    static func withFile(_ body: (LocalFile) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-verify-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("two-parts.bin")
        try Data(repeating: UInt8(ascii: "a"), count: Int(partSize) + 0).write(to: url)
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(repeating: UInt8(ascii: "b"), count: 1000))
        try handle.close()
        try body(try LocalFile(path: url.path))
    }

    @Test func compositeChecksumAndETagAreThoseS3Reports() {
        #expect(ObjectVerification.compositeChecksum(Self.parts.compactMap(\.checksumSHA256)) == Self.compositeChecksum)
        #expect(ObjectVerification.compositeETag(Self.parts.map(\.etag)) == Self.compositeETag)
        #expect(ObjectVerification.compositeETag(["not-an-md5"]) == nil)
        #expect(ObjectVerification.compositeChecksum(["%%%"]) == nil)
    }

    @Test func aMultipartObjectIsConfirmedByItsCompositeChecksum() throws {
        try Self.withFile { file in
            let object = ObjectInfo(
                size: Self.size,
                etag: "\"\(Self.compositeETag)\"",
                checksumSHA256: Self.compositeChecksum
            )
            #expect(
                ObjectVerification.sha256(ofCopyOf: file, size: Self.size, object: object, parts: Self.parts)
                    == Self.wholeSHA256
            )
            // Without the recorded parts a multipart object cannot be confirmed.
            #expect(ObjectVerification.sha256(ofCopyOf: file, size: Self.size, object: object) == nil)
        }
    }

    @Test func aMultipartObjectWithoutAChecksumIsConfirmedByItsCompositeETag() throws {
        try Self.withFile { file in
            let object = ObjectInfo(size: Self.size, etag: "\"\(Self.compositeETag)\"", checksumSHA256: nil)
            #expect(
                ObjectVerification.sha256(ofCopyOf: file, size: Self.size, object: object, parts: Self.parts)
                    == Self.wholeSHA256
            )
        }
    }

    @Test func anotherObjectOrPartsThatAreNotTheFilesAreNotConfirmed() throws {
        try Self.withFile { file in
            let object = ObjectInfo(
                size: Self.size,
                etag: "\"\(Self.compositeETag)\"",
                checksumSHA256: Self.compositeChecksum
            )
            // The object was assembled from other parts.
            var otherParts = Self.parts
            otherParts[1].checksumSHA256 = Self.parts[0].checksumSHA256
            #expect(
                ObjectVerification.sha256(ofCopyOf: file, size: Self.size, object: object, parts: otherParts) == nil
            )
            // A part missing.
            #expect(
                ObjectVerification.sha256(ofCopyOf: file, size: Self.size, object: object, parts: [Self.parts[0]])
                    == nil
            )
            // Another object under the key: other composite checksum, or another size.
            var other = object
            other.checksumSHA256 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=-2"
            #expect(ObjectVerification.sha256(ofCopyOf: file, size: Self.size, object: other, parts: Self.parts) == nil)
            other = object
            other.size += 1
            #expect(ObjectVerification.sha256(ofCopyOf: file, size: Self.size, object: other, parts: Self.parts) == nil)
        }
    }

    @Test func aSingleRequestObjectIsConfirmedByItsChecksumOrItsMD5ETag() throws {
        try Self.withFile { file in
            let small: Int64 = 1000
            let bytes = [UInt8](repeating: UInt8(ascii: "a"), count: Int(small))
            let md5 = MD5.digest(bytes).hexString
            let sha256 = SHA256.digest(bytes)
            #expect(
                ObjectVerification.sha256(
                    ofCopyOf: file,
                    size: small,
                    object: ObjectInfo(size: small, etag: "\"x\"", checksumSHA256: sha256.base64)
                ) == sha256.hexString
            )
            #expect(
                ObjectVerification.sha256(
                    ofCopyOf: file,
                    size: small,
                    object: ObjectInfo(size: small, etag: "\"\(md5)\"", checksumSHA256: nil)
                ) == sha256.hexString
            )
            #expect(
                ObjectVerification.sha256(
                    ofCopyOf: file,
                    size: small,
                    object: ObjectInfo(
                        size: small,
                        etag: "\"\(String(repeating: "0", count: 32))\"",
                        checksumSHA256: nil
                    )
                ) == nil
            )
        }
    }
}
