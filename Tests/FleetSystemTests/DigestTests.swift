import Testing

@testable import FleetSystem

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

    /// RFC 4231's HMAC-SHA256 test cases 1, 2 (a key shorter than a block), 6 and 7 (a key longer than a block).
    @Test(arguments: [
        (
            [UInt8](repeating: 0x0b, count: 20), "Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        ),
        (
            Array("Jefe".utf8), "what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ),
        (
            [UInt8](repeating: 0xaa, count: 131), "Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        ),
        (
            [UInt8](repeating: 0xaa, count: 131),
            "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
        ),
    ])
    func hmacSHA256MatchesTheReferenceVectors(key: [UInt8], message: String, hex: String) {
        #expect(SHA256.hmac(key: key, message: Array(message.utf8)).hexString == hex)
    }

    @Test func sha256OfNothingIsTheEmptyPayloadHash() {
        #expect(SHA256.hex(of: []) == SHA256.emptyHex)
    }
}
