import FleetSystem

/// A PutMetricData request that failed, classified by `AWSErrorClass` as `S3Error` is.
///
/// `kind.rawValue` is what the publisher counts failures by; `description` names the AWS error code and the
/// server's message, never the credentials or the `Authorization` header.
package struct CloudWatchError: Error, Sendable, CustomStringConvertible {
    package enum Kind: String, Sendable, CaseIterable {
        // Transient: the same data can go out at the next flush.
        case network
        case timeout
        /// The local clock is too far from the server's.
        case clockSkewed = "clock_skewed"
        case throttled
        case server
        case expiredToken = "expired_token"
        // Something must change first (credentials, permissions, the configuration).
        case credentials
        case accessDenied = "access_denied"
        case invalidCredentials = "invalid_credentials"
        case signatureMismatch = "signature_mismatch"
        case invalidRequest = "invalid_request"
        case tls
    }

    package var kind: Kind
    package var httpStatus: Int?
    /// The AWS error code: `Throttling`, `AccessDenied`, `InvalidParameterValue`.
    package var awsCode: String?
    package var message: String

    package init(_ kind: Kind, _ message: String, httpStatus: Int? = nil, awsCode: String? = nil) {
        self.kind = kind
        self.message = message
        self.httpStatus = httpStatus
        self.awsCode = awsCode
    }

    package var isTransient: Bool {
        [.network, .timeout, .clockSkewed, .throttled, .server, .expiredToken].contains(kind)
    }

    package var description: String {
        var text = "CloudWatch \(kind.rawValue)"
        if let httpStatus { text += " (HTTP \(httpStatus)\(awsCode.map { " \($0)" } ?? ""))" }
        return text + ": \(message)"
    }
}

extension CloudWatchError {
    /// Classifies an error response from its status and the Query API's
    /// `<ErrorResponse><Error><Code>…</Code><Message>…</Message></Error></ErrorResponse>` document.
    init(status: Int, body: [UInt8]) {
        let error = XMLTree.parse(body).flatMap { $0.name == "ErrorResponse" ? $0.child("Error") : nil }
        let code = error?["Code"].flatMap { $0.isEmpty ? nil : $0 }
        let kind: Kind =
            switch AWSErrorClass(status: status, code: code) {
            case .throttled: .throttled
            case .timeout: .timeout
            case .clockSkewed: .clockSkewed
            case .expiredToken: .expiredToken
            case .invalidCredentials: .invalidCredentials
            case .signatureMismatch: .signatureMismatch
            case .accessDenied: .accessDenied
            case .server: .server
            case .badDigest, .noSuchBucket, .noSuchKey, .noSuchUpload, .invalidRequest, .preconditionFailed,
                .entityTooLarge:
                .invalidRequest
            }
        let message = error?["Message"].flatMap { $0.isEmpty ? nil : $0 } ?? "HTTP \(status) from PutMetricData"
        self.init(kind, message, httpStatus: status, awsCode: code)
    }

    /// A transport failure (no HTTP response) as a CloudWatch error of the matching class.
    package init(_ error: HTTPError) {
        let kind: Kind
        switch error.kind {
        case .dns, .connect, .network, .bodyRead, .ended: kind = .network
        case .timeout, .stalled: kind = .timeout
        case .tls: kind = .tls
        case .invalidRequest: kind = .invalidRequest
        }
        self.init(kind, error.message)
    }
}
