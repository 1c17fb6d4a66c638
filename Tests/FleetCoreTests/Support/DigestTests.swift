import Testing

@testable import FleetCore

struct DigestTests {
    /// RFC 1321's test suite, as `Content-MD5` carries it (base64 of the 16 bytes).
    @Test(arguments: [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    ])
    func md5MatchesTheReferenceVectors(input: String, hex: String) {
        #expect(MD5.digest(Array(input.utf8)).hexString == hex)
    }

    @Test func contentMD5IsTheBase64OfTheDigest() {
        #expect(MD5.digest(Array("abc".utf8)).base64 == "kAFQmDzST7DWlj99KOF/cg==")
    }
}
