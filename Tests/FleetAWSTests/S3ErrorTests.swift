import FleetSystem
import Testing

@testable import FleetAWS

struct S3ErrorTests {
    // MARK: - HTTP error responses (AWSErrorClass)

    struct Response: Sendable, CustomTestStringConvertible {
        var status: Int
        var code: String?
        var kind: S3Error.Kind
        var isTransient: Bool
        var testDescription: String { "HTTP \(status) \(code ?? "(no code)") → \(kind.rawValue)" }
    }

    @Test(arguments: [
        // Transient: the service is unavailable or busy.
        Response(status: 500, code: nil, kind: .server, isTransient: true),
        Response(status: 503, code: nil, kind: .server, isTransient: true),
        Response(status: 500, code: "InternalError", kind: .server, isTransient: true),
        Response(status: 503, code: "ServiceUnavailable", kind: .server, isTransient: true),
        Response(status: 502, code: nil, kind: .server, isTransient: true),
        Response(status: 503, code: "SlowDown", kind: .throttled, isTransient: true),
        Response(status: 429, code: nil, kind: .throttled, isTransient: true),
        Response(status: 429, code: "TooManyRequests", kind: .throttled, isTransient: true),
        Response(status: 400, code: "Throttling", kind: .throttled, isTransient: true),
        Response(status: 400, code: "ThrottlingException", kind: .throttled, isTransient: true),
        Response(status: 503, code: "RequestLimitExceeded", kind: .throttled, isTransient: true),
        // Transient: timeouts and temporary credentials that a refresh fixes.
        Response(status: 400, code: "RequestTimeout", kind: .timeout, isTransient: true),
        // Transient: the local clock is off; signing with the server's time fixes it.
        Response(status: 403, code: "RequestTimeTooSkewed", kind: .clockSkewed, isTransient: true),
        Response(status: 400, code: "RequestExpired", kind: .clockSkewed, isTransient: true),
        Response(status: 400, code: "ExpiredToken", kind: .expiredToken, isTransient: true),
        Response(status: 403, code: "ExpiredToken", kind: .expiredToken, isTransient: true),
        Response(status: 400, code: "TokenRefreshRequired", kind: .expiredToken, isTransient: true),
        // Transient: the file changed while it was read, so the bytes did not match the checksum.
        Response(status: 400, code: "BadDigest", kind: .badDigest, isTransient: true),
        Response(status: 400, code: "XAmzContentSHA256Mismatch", kind: .badDigest, isTransient: true),
        // Transient: a conditional write found another write there; the uploader looks at the key again.
        Response(status: 412, code: "PreconditionFailed", kind: .preconditionFailed, isTransient: true),
        Response(status: 409, code: "ConditionalRequestConflict", kind: .preconditionFailed, isTransient: true),
        Response(status: 412, code: nil, kind: .preconditionFailed, isTransient: true),
        // Permanent: credentials, permissions and configuration.
        Response(status: 403, code: "AccessDenied", kind: .accessDenied, isTransient: false),
        Response(status: 403, code: nil, kind: .accessDenied, isTransient: false),
        Response(status: 403, code: "InvalidAccessKeyId", kind: .invalidCredentials, isTransient: false),
        Response(status: 403, code: "InvalidToken", kind: .invalidCredentials, isTransient: false),
        Response(status: 403, code: "SignatureDoesNotMatch", kind: .signatureMismatch, isTransient: false),
        Response(status: 404, code: "NoSuchBucket", kind: .noSuchBucket, isTransient: false),
        Response(status: 404, code: "NoSuchKey", kind: .noSuchKey, isTransient: false),
        Response(status: 404, code: "NoSuchUpload", kind: .noSuchUpload, isTransient: false),
        Response(status: 400, code: "EntityTooLarge", kind: .entityTooLarge, isTransient: false),
        Response(status: 400, code: "KeyTooLongError", kind: .invalidRequest, isTransient: false),
        Response(status: 400, code: "InvalidBucketName", kind: .invalidRequest, isTransient: false),
        Response(status: 400, code: nil, kind: .invalidRequest, isTransient: false),
        Response(status: 301, code: "PermanentRedirect", kind: .invalidRequest, isTransient: false),
    ])
    func responseIsClassifiedByStatusAndCode(_ response: Response) {
        let error = S3Error(
            status: response.status,
            code: response.code,
            message: "m",
            requestID: nil,
            resource: "s3://fleet-data/k"
        )
        #expect(error.kind == response.kind)
        #expect(error.isTransient == response.isTransient)
        #expect(error.httpStatus == response.status)
        #expect(error.awsCode == response.code)
    }

    @Test func everyKindIsEitherTransientOrPermanentAsDocumented() {
        let transient: Set<S3Error.Kind> = [
            .network, .timeout, .clockSkewed, .throttled, .server, .expiredToken, .fileChanged, .badDigest,
            .preconditionFailed, .interrupted, .scratchSpace,
        ]
        for kind in S3Error.Kind.allCases {
            #expect(S3Error(kind, "m").isTransient == transient.contains(kind), "\(kind)")
        }
    }

    // MARK: - Transport failures

    struct Transport: Sendable, CustomTestStringConvertible {
        var http: HTTPError.Kind
        var kind: S3Error.Kind
        var isTransient: Bool
        var testDescription: String { "\(http.rawValue) → \(kind.rawValue)" }
    }

    @Test(arguments: [
        Transport(http: .dns, kind: .network, isTransient: true),
        Transport(http: .connect, kind: .network, isTransient: true),
        Transport(http: .network, kind: .network, isTransient: true),
        Transport(http: .timeout, kind: .timeout, isTransient: true),
        Transport(http: .stalled, kind: .timeout, isTransient: true),
        Transport(http: .tls, kind: .tls, isTransient: false),
        Transport(http: .bodyRead, kind: .fileChanged, isTransient: true),
        Transport(http: .invalidRequest, kind: .invalidRequest, isTransient: false),
    ])
    func transportFailureIsClassifiedByHTTPErrorKind(_ transport: Transport) {
        let error = S3Error(HTTPError(kind: transport.http, message: "curl said no", curlCode: 7))
        #expect(error.kind == transport.kind)
        #expect(error.isTransient == transport.isTransient)
        #expect(error.message == "curl said no")
        #expect(error.httpStatus == nil)
    }

    // MARK: - Description and messages

    @Test func descriptionNamesStatusCodeMessageAndRequestID() {
        let error = S3Error(
            status: 503,
            code: "SlowDown",
            message: "Please reduce your request rate.",
            requestID: "4442587FB7D0A2F9",
            resource: "s3://fleet-data/k"
        )
        #expect(error.description.contains("503"))
        #expect(error.description.contains("SlowDown"))
        #expect(error.description.contains("4442587FB7D0A2F9"))
        #expect(error.description.contains("Please reduce your request rate."))
        #expect(error.description.contains("throttled"))
    }

    @Test func descriptionOmitsWhatIsUnknown() {
        let error = S3Error(.network, "connection reset")
        #expect(error.description == "S3 network: connection reset")
    }

    @Test(arguments: [nil, ""] as [String?])
    func missingMessageDefaultsToOneNamingTheResource(message: String?) {
        for status in [301, 307, 400, 403, 404, 409, 500, 503] {
            let error = S3Error(
                status: status,
                code: nil,
                message: message,
                requestID: nil,
                resource: "s3://fleet-data/logs/a.bag"
            )
            #expect(error.message.contains("s3://fleet-data/logs/a.bag"), "HTTP \(status)")
            #expect(error.description.contains("s3://fleet-data/logs/a.bag"), "HTTP \(status)")
        }
    }

    @Test func missingMessageSaysWhatTheStatusMeans() {
        func message(_ status: Int) -> String {
            S3Error(status: status, code: nil, message: nil, requestID: nil, resource: "s3://b/k").message
        }
        #expect(message(404) == "s3://b/k not found")
        #expect(message(403) == "access to s3://b/k denied")
        #expect(message(301).contains("another region"))
        #expect(message(503).contains("server error"))
        #expect(message(418).contains("418"))
    }

    @Test func messageFromTheErrorDocumentIsKept() {
        let error = S3Error(
            status: 403,
            code: "AccessDenied",
            message: "Access Denied",
            requestID: "ABC",
            resource: "s3://b/k"
        )
        #expect(error.message == "Access Denied")
        #expect(error.requestID == "ABC")
    }
}
