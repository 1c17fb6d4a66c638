import FleetSystem
import Foundation
import Testing

@testable import FleetAWS

struct SigV4SignerTests {
    // MARK: - AWS SigV4 test suite (Fixtures/sigv4)

    /// One vector of `aws4_testsuite.json`, reduced to the fields the Authorization-header signer uses.
    struct Vector: Decodable, Sendable, CustomTestStringConvertible {
        struct Request: Decodable, Sendable {
            var method: String
            var host: String
            var rawPath: String
            var rawQuery: String
            var headers: [[String]]
        }
        struct Credentials: Decodable, Sendable {
            var accessKeyId: String
            var secretAccessKey: String
            var sessionToken: String?
        }
        struct Expected: Decodable, Sendable {
            var canonicalRequest: String
            var stringToSign: String
            var signedHeaders: String
            var signature: String
            var authorization: String
        }
        struct HookInput: Decodable, Sendable {
            var addXAmzContentSha256: Bool
        }

        var id: String
        var s3Relevant: Bool
        var request: Request
        var signerAdds: [[String]]
        var payloadHash: String
        var credentials: Credentials
        var amzDate: String
        var region: String
        var service: String
        var expected: Expected
        var hookInput: HookInput

        var testDescription: String { id }
    }

    private struct SuiteFile: Decodable {
        var vectors: [Vector]
    }

    struct TestSuiteNotFound: Error, CustomStringConvertible {
        var lookedAt: [String]
        var description: String {
            "SigV4 test suite not found; looked at: \(lookedAt.joined(separator: ", ")) "
                + "(set FLEET_SIGV4_TESTSUITE to the path of aws4_testsuite.json)"
        }
    }

    /// `FLEET_SIGV4_TESTSUITE` when set, otherwise the copy in `Fixtures/sigv4/` beside this file.
    static func testSuiteURL(filePath: String = #filePath) throws -> URL {
        if let override = ProcessInfo.processInfo.environment["FLEET_SIGV4_TESTSUITE"], !override.isEmpty {
            guard FileManager.default.fileExists(atPath: override) else {
                throw TestSuiteNotFound(lookedAt: ["\(override) (FLEET_SIGV4_TESTSUITE)"])
            }
            return URL(fileURLWithPath: override)
        }
        let url = URL(fileURLWithPath: filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/sigv4/aws4_testsuite.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TestSuiteNotFound(lookedAt: ["\(url.path) (from #filePath)"])
        }
        return url
    }

    /// The vectors an S3 signer must follow (`s3_relevant: true`).
    static func s3Vectors() throws -> [Vector] {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let suite = try decoder.decode(SuiteFile.self, from: Data(contentsOf: testSuiteURL()))
        return suite.vectors.filter(\.s3Relevant)
    }

    /// `a=1&%E1%88%B4=b&flag` → decoded pairs; a key without `=` has the value `""`.
    static func decodedQuery(_ raw: String) -> [(name: String, value: String)] {
        raw.split(separator: "&").map { part in
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (text: Substring) in text.removingPercentEncoding ?? String(text) }
            return (decode(pieces[0]), pieces.count > 1 ? decode(pieces[1]) : "")
        }
    }

    /// `20150830T123600Z` as a `Date`.
    static func date(amz text: String) throws -> Date {
        let c = Array(text)
        let postgres =
            "\(String(c[0..<4]))-\(String(c[4..<6]))-\(String(c[6..<8])) "
            + "\(String(c[9..<11])):\(String(c[11..<13])):\(String(c[13..<15]))+00"
        return try #require(Timestamp(postgres: postgres), "bad amz_date \(text)").date
    }

    @Test func awsSuiteHoldsThirtyOneS3Vectors() throws {
        #expect(try Self.s3Vectors().count == 31)
    }

    @Test(arguments: try s3Vectors())
    func signsTestSuiteVectorByteForByte(vector: Vector) throws {
        var signer = SigV4Signer(
            credentials: AWSCredentials(
                accessKeyID: vector.credentials.accessKeyId,
                secretAccessKey: vector.credentials.secretAccessKey,
                sessionToken: vector.credentials.sessionToken,
                source: "test suite"
            ),
            region: vector.region,
            service: vector.service
        )
        signer.addContentSHA256 = vector.hookInput.addXAmzContentSha256
        let request = SigV4Request(
            method: vector.request.method,
            host: vector.request.host,
            path: vector.request.rawPath,
            query: Self.decodedQuery(vector.request.rawQuery),
            headers: vector.request.headers.map { ($0[0], $0[1]) },
            payloadHash: vector.payloadHash
        )

        let signature = signer.sign(request, at: try Self.date(amz: vector.amzDate))

        #expect(signature.canonicalRequest == vector.expected.canonicalRequest)
        #expect(signature.stringToSign == vector.expected.stringToSign)
        #expect(signature.signedHeaders == vector.expected.signedHeaders)
        #expect(signature.signature == vector.expected.signature)
        #expect(signature.authorization == vector.expected.authorization)
        #expect(
            signature.headersToAdd.map { "\($0.name): \($0.value)" }
                == vector.signerAdds.map { "\($0[0]): \($0[1])" } + ["Authorization: \(vector.expected.authorization)"]
        )
    }

    // MARK: - S3 documentation examples (single-chunk payload, Authorization header)

    private static let exampleSigner = SigV4Signer(
        credentials: AWSCredentials(
            accessKeyID: "AKIAIOSFODNN7EXAMPLE",
            secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            source: "S3 documentation"
        ),
        region: "us-east-1",
        service: "s3"
    )
    private static let exampleHost = "examplebucket.s3.amazonaws.com"
    private static let exampleDate = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
    private static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    struct DocExample: Sendable, CustomTestStringConvertible {
        var name: String
        var method: String
        var path: String
        var query: [(name: String, value: String)]
        var headers: [(name: String, value: String)]
        var payloadHash: String
        var signature: String

        var testDescription: String { name }
    }

    static let docExamples = [
        DocExample(
            name: "GET Object",
            method: "GET",
            path: "/test.txt",
            query: [],
            headers: [("Range", "bytes=0-9")],
            payloadHash: emptyPayloadHash,
            signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        ),
        DocExample(
            name: "PUT Object",
            method: "PUT",
            path: "/test$file.text",
            query: [],
            headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: SHA256.hex(of: Array("Welcome to Amazon S3.".utf8)),
            signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        ),
        DocExample(
            name: "GET Bucket Lifecycle",
            method: "GET",
            path: "/",
            query: [("lifecycle", "")],
            headers: [],
            payloadHash: emptyPayloadHash,
            signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        ),
        DocExample(
            name: "GET Bucket (List Objects)",
            method: "GET",
            path: "/",
            query: [("prefix", "J"), ("max-keys", "2")],
            headers: [],
            payloadHash: emptyPayloadHash,
            signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ),
    ]

    private static func signExample(_ example: DocExample) -> SigV4Signature {
        let request = SigV4Request(
            method: example.method,
            host: exampleHost,
            path: example.path,
            query: example.query,
            headers: [("Host", exampleHost)] + example.headers,
            payloadHash: example.payloadHash
        )
        return exampleSigner.sign(request, at: exampleDate)
    }

    @Test(arguments: docExamples)
    func signsS3DocumentationExample(example: DocExample) {
        let signature = Self.signExample(example)
        #expect(signature.signature == example.signature)
        #expect(
            signature.authorization
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                + "SignedHeaders=\(signature.signedHeaders), Signature=\(example.signature)"
        )
    }

    @Test func getObjectExampleHasTheDocumentedCanonicalRequest() {
        let signature = Self.signExample(Self.docExamples[0])
        #expect(
            signature.canonicalRequest == """
                GET
                /test.txt

                host:examplebucket.s3.amazonaws.com
                range:bytes=0-9
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;range;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """
        )
        #expect(
            signature.stringToSign == """
                AWS4-HMAC-SHA256
                20130524T000000Z
                20130524/us-east-1/s3/aws4_request
                7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
                """
        )
        #expect(signature.signedHeaders == "host;range;x-amz-content-sha256;x-amz-date")
    }

    @Test func putObjectExampleSignsTheDollarSignEncodedOnce() {
        let signature = Self.signExample(Self.docExamples[1])
        #expect(signature.canonicalRequest.hasPrefix("PUT\n/test%24file.text\n\n"))
        #expect(signature.signedHeaders == "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class")
        #expect(
            signature.canonicalRequest.contains(
                "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
            )
        )
    }

    @Test func listObjectsExampleSortsTheQueryAndKeepsAnEmptyValue() {
        #expect(Self.signExample(Self.docExamples[2]).canonicalRequest.hasPrefix("GET\n/\nlifecycle=\n"))
        #expect(Self.signExample(Self.docExamples[3]).canonicalRequest.hasPrefix("GET\n/\nmax-keys=2&prefix=J\n"))
    }

    // MARK: - Signing key, encoding, headers and dates

    @Test func derivesTheDocumentedSigningKey() {
        let key = SigV4Signer.signingKey(
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            date: "20150830",
            region: "us-east-1",
            service: "iam"
        )
        #expect(key.hexString == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
    }

    @Test(arguments: [
        ("a b", false, "a%20b"),
        ("a+b", true, "a%2Bb"),
        ("100%", false, "100%25"),
        ("a#b?c", false, "a%23b%3Fc"),
        ("~user-1.x_y", true, "~user-1.x_y"),
        ("é", true, "%C3%A9"),
        ("ሴ", false, "%E1%88%B4"),
        ("=&*$", true, "%3D%26%2A%24"),
        ("dir/a b/c", false, "dir/a%20b/c"),
        ("dir/a b/c", true, "dir%2Fa%20b%2Fc"),
        ("", true, ""),
    ])
    func uriEncodeKeepsOnlyUnreservedCharacters(text: String, encodingSlash: Bool, expected: String) {
        #expect(SigV4Signer.uriEncode(text, encodingSlash: encodingSlash) == expected)
    }

    @Test func pathIsEncodedOnceAndNeverNormalised() {
        #expect(SigV4Signer.canonicalURI("/bucket/my key+1%.txt") == "/bucket/my%20key%2B1%25.txt")
        #expect(SigV4Signer.canonicalURI("/bucket/a/../b/./c//d") == "/bucket/a/../b/./c//d")
        #expect(SigV4Signer.canonicalURI("/bucket/%41") == "/bucket/%2541")
        #expect(SigV4Signer.canonicalURI("") == "/")
    }

    @Test func queryIsEncodedAndSortedByNameThenValue() {
        let query = [("b", "2"), ("a", "z"), ("a", "y"), ("uploads", ""), ("key", "x/y z"), ("A", "1")]
        #expect(SigV4Signer.canonicalQuery(query) == "A=1&a=y&a=z&b=2&key=x%2Fy%20z&uploads=")
    }

    @Test func headersAreLowercasedTrimmedCollapsedJoinedAndSorted() {
        let (block, signed) = SigV4Signer.canonicalHeaders([
            ("Host", "h"), ("X-B", "  a   b  c \t"), ("x-a", "1"), ("X-A", " 2 "), ("Content-Type", "text/plain"),
        ])
        #expect(block == "content-type:text/plain\nhost:h\nx-a:1,2\nx-b:a b c\n")
        #expect(signed == "content-type;host;x-a;x-b")
    }

    @Test(arguments: [
        (1_369_353_600.0, "20130524T000000Z"),
        (1_440_938_160.0, "20150830T123600Z"),
        (1_709_251_199.999, "20240229T235959Z"),
        (0.0, "19700101T000000Z"),
    ])
    func amzDateIsUTCWholeSeconds(seconds: Double, expected: String) {
        #expect(SigV4Signer.amzDate(Date(timeIntervalSince1970: seconds)) == expected)
    }

    @Test func addsDateTokenAndContentHashThenAuthorizationLast() {
        let signer = SigV4Signer(
            credentials: AWSCredentials(
                accessKeyID: "AKIDEXAMPLE",
                secretAccessKey: "secret",
                sessionToken: "token/with+chars=",
                source: "test"
            ),
            region: "eu-central-1",
            service: "s3"
        )
        #expect(signer.addContentSHA256)
        let request = SigV4Request(
            method: "PUT",
            host: "bucket.s3.eu-central-1.amazonaws.com",
            path: "/k",
            query: [],
            headers: [("Host", "bucket.s3.eu-central-1.amazonaws.com")],
            payloadHash: "UNSIGNED-PAYLOAD"
        )
        let signature = signer.sign(request, at: Self.exampleDate)
        #expect(
            signature.headersToAdd.map(\.name) == [
                "X-Amz-Date", "X-Amz-Security-Token", "x-amz-content-sha256", "Authorization",
            ]
        )
        #expect(
            signature.headersToAdd.map(\.value).dropLast() == [
                "20130524T000000Z", "token/with+chars=", "UNSIGNED-PAYLOAD",
            ]
        )
        #expect(signature.signedHeaders == "host;x-amz-content-sha256;x-amz-date;x-amz-security-token")
        #expect(signature.canonicalRequest.hasSuffix("\nUNSIGNED-PAYLOAD"))
    }

    @Test func aKeyCacheSignsAsFreshKeysDoAcrossDaysAndSecrets() {
        func signer(_ secret: String) -> SigV4Signer {
            SigV4Signer(
                credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: secret, source: "test"),
                region: "cn-north-1",
                service: "s3"
            )
        }
        let request = SigV4Request(
            method: "GET",
            host: "example.com",
            path: "/",
            query: [],
            headers: [("Host", "example.com")],
            payloadHash: SHA256.emptyHex
        )
        var keys = SigV4KeyCache()
        let nextDay = Self.exampleDate.addingTimeInterval(86_400)
        for (secret, date) in [
            ("one", Self.exampleDate), ("one", Self.exampleDate), ("one", nextDay), ("two", nextDay),
        ] {
            #expect(
                signer(secret).sign(request, at: date, keys: &keys).authorization
                    == signer(secret).sign(request, at: date).authorization
            )
        }
        #expect(!String(reflecting: keys).contains("two"))
    }

    @Test func contentHashHeaderIsOnlyAddedForS3ByDefault() {
        let signer = SigV4Signer(
            credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret", source: "test"),
            region: "us-east-1",
            service: "sts"
        )
        #expect(!signer.addContentSHA256)
        let request = SigV4Request(
            method: "POST",
            host: "sts.amazonaws.com",
            path: "/",
            query: [],
            headers: [("Host", "sts.amazonaws.com")],
            payloadHash: Self.emptyPayloadHash
        )
        #expect(signer.sign(request, at: Self.exampleDate).headersToAdd.map(\.name) == ["X-Amz-Date", "Authorization"])
    }

    @Test func requestCarryingASignerHeaderStopsTheProcess() async {
        await #expect(processExitsWith: .failure) {
            let signer = SigV4Signer(
                credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret", source: "test"),
                region: "us-east-1",
                service: "s3"
            )
            let request = SigV4Request(
                method: "GET",
                host: "h",
                path: "/",
                query: [],
                headers: [("Host", "h"), ("X-Amz-Date", "20130524T000000Z")],
                payloadHash: "UNSIGNED-PAYLOAD"
            )
            _ = signer.sign(request, at: Date())
        }
    }

    // MARK: - Secrets stay out of descriptions

    @Test func descriptionsNeverShowTheSecretOrTheToken() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        let token = "AQoDYXdzEPT//////////wEXAMPLEtoken"
        let credentials = AWSCredentials(
            accessKeyID: "AKIAIOSFODNN7EXAMPLE",
            secretAccessKey: secret,
            sessionToken: token,
            source: "environment"
        )
        let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "s3")
        let signature = signer.sign(
            SigV4Request(
                method: "GET",
                host: "h",
                path: "/",
                query: [],
                headers: [("Host", "h")],
                payloadHash: Self.emptyPayloadHash
            ),
            at: Self.exampleDate
        )
        var dumped = ""
        dump(signer, to: &dumped)
        dump(signature, to: &dumped)
        let texts = [
            String(describing: credentials), String(reflecting: credentials), "\(signer)", String(reflecting: signer),
            String(describing: signature), String(reflecting: signature), dumped,
        ]
        for text in texts {
            #expect(!text.contains(secret), "\(text)")
            #expect(!text.contains(token), "\(text)")
            #expect(!text.contains(signature.signature), "\(text)")
        }
        #expect("\(signer)" == "SigV4Signer(s3, us-east-1, environment (AKIA…MPLE))")
    }
}
