/// What an AWS error response means, from its HTTP status and error code, whichever service sent it.
///
/// S3 answers with `<Error><Code>`, the Query APIs (CloudWatch, STS) with `<ErrorResponse><Error><Code>`;
/// the codes overlap, and one table classifies them all, so a code means the same thing to every client.
package enum AWSErrorClass: String, Sendable, CaseIterable {
    case throttled
    case timeout
    /// The request was signed too far from the server's time (S3 allows 15 minutes): the local clock is off.
    case clockSkewed = "clock_skewed"
    case expiredToken = "expired_token"
    case badDigest = "bad_digest"
    case invalidCredentials = "invalid_credentials"
    case signatureMismatch = "signature_mismatch"
    case noSuchBucket = "no_such_bucket"
    case noSuchKey = "no_such_key"
    case noSuchUpload = "no_such_upload"
    case accessDenied = "access_denied"
    case server
    case invalidRequest = "invalid_request"
    /// A conditional write (`If-None-Match: *`, `If-Match`) found the key in another state than it asked for.
    case preconditionFailed = "precondition_failed"
    /// An object or part above S3's size limits.
    case entityTooLarge = "entity_too_large"

    /// Classifies an error response.
    ///
    /// - Parameters:
    ///   - status: The HTTP status.
    ///   - code: The error document's `Code`, if the response had one.
    package init(status: Int, code: String?) {
        switch (status, code ?? "") {
        case (_, "SlowDown"), (_, "Throttling"), (_, "ThrottlingException"), (_, "RequestLimitExceeded"),
            (_, "TooManyRequests"), (429, _):
            self = .throttled
        case (_, "RequestTimeTooSkewed"), (_, "RequestExpired"): self = .clockSkewed
        case (_, "RequestTimeout"), (408, _): self = .timeout
        case (_, "ExpiredToken"), (_, "ExpiredTokenException"), (_, "TokenRefreshRequired"): self = .expiredToken
        case (_, "BadDigest"), (_, "XAmzContentSHA256Mismatch"), (_, "InvalidDigest"): self = .badDigest
        case (_, "InvalidAccessKeyId"), (_, "InvalidToken"), (_, "InvalidClientTokenId"),
            (_, "UnrecognizedClientException"), (_, "MissingAuthenticationToken"):
            self = .invalidCredentials
        case (_, "SignatureDoesNotMatch"), (_, "IncompleteSignature"): self = .signatureMismatch
        case (_, "NoSuchBucket"): self = .noSuchBucket
        case (_, "NoSuchKey"): self = .noSuchKey
        case (_, "NoSuchUpload"): self = .noSuchUpload
        case (_, "PreconditionFailed"), (_, "ConditionalRequestConflict"), (412, _): self = .preconditionFailed
        case (_, "EntityTooLarge"): self = .entityTooLarge
        case (_, "AccessDenied"), (_, "AccessDeniedException"), (403, _): self = .accessDenied
        case (_, "InternalFailure"), (_, "InternalError"), (_, "ServiceUnavailable"), (500..<600, _): self = .server
        default: self = .invalidRequest
        }
    }
}
