import FleetSystem

/// A failed S3 (or STS) operation, classified for retries and the ledger.
///
/// `kind.rawValue` is the error class stored in `file_uploads.error_class` and shown in Grafana; transient
/// kinds are retried with backoff, permanent ones are recorded at once; `AWSErrorClass` reads the error codes.
package struct S3Error: Error, Sendable, CustomStringConvertible {
    package enum Kind: String, Sendable, CaseIterable {
        // Transient: the same request can succeed later.
        case network
        case timeout
        /// The local clock is too far from the server's; signing with the server's time fixes it.
        case clockSkewed = "clock_skewed"
        case throttled
        case server
        case expiredToken = "expired_token"
        case fileChanged = "file_changed"
        case badDigest = "bad_digest"
        /// A conditional write found the key in another state than the look before it: another write reached it
        /// in between (often this upload's own earlier attempt, whose answer was lost). Looked at again.
        case preconditionFailed = "precondition_failed"
        /// A stop (SIGINT, SIGTERM) ended the transfer before its end; nothing was stored, and the parts of a
        /// multipart upload that were sent are kept for the next attempt.
        case interrupted
        /// The temporary copy a file is compressed into could not be made or written (a full or missing
        /// temporary directory): the file itself is fine, and is tried again once there is room.
        case scratchSpace = "scratch_space"
        // Permanent: something must change first.
        case accessDenied = "access_denied"
        case invalidCredentials = "invalid_credentials"
        case signatureMismatch = "signature_mismatch"
        case noSuchBucket = "no_such_bucket"
        case noSuchKey = "no_such_key"
        case noSuchUpload = "no_such_upload"
        case fileMissing = "file_missing"
        case fileUnreadable = "file_unreadable"
        case invalidRequest = "invalid_request"
        /// Larger than S3 stores: an object above 5 TiB, or a part above 5 GiB.
        case entityTooLarge = "entity_too_large"
        case tls
        case other
    }

    package var kind: Kind
    package var httpStatus: Int?
    /// The S3 error code: `SlowDown`, `AccessDenied`, `NoSuchBucket`.
    package var awsCode: String?
    package var requestID: String?
    package var message: String

    package init(
        _ kind: Kind,
        _ message: String,
        httpStatus: Int? = nil,
        awsCode: String? = nil,
        requestID: String? = nil
    ) {
        self.kind = kind
        self.message = message
        self.httpStatus = httpStatus
        self.awsCode = awsCode
        self.requestID = requestID
    }

    /// Worth retrying with backoff. A bad digest means the bytes sent did not match the checksum computed
    /// just before: the file changed while it was read, so it is tried again once it is stable.
    package var isTransient: Bool {
        switch kind {
        case .network, .timeout, .clockSkewed, .throttled, .server, .expiredToken, .fileChanged, .badDigest,
            .preconditionFailed, .interrupted, .scratchSpace:
            true
        default: false
        }
    }

    /// Throttling (503 SlowDown, 429), a timeout or a reset: a sign that fewer requests in flight would do
    /// better.
    package var signalsCongestion: Bool { kind == .throttled || kind == .timeout || kind == .network }

    /// The request may have reached the store and changed it although no answer said so: the connection broke
    /// or timed out after the request went out, the store failed while answering, or a conditional write found
    /// another write there. Before such a request is sent again, the bucket is asked what it holds.
    package var mayHaveTakenEffect: Bool {
        switch kind {
        case .network, .timeout, .server, .preconditionFailed: true
        default: false
        }
    }

    package var description: String {
        var text = "S3 \(kind.rawValue)"
        if let httpStatus { text += " (HTTP \(httpStatus)\(awsCode.map { " \($0)" } ?? ""))" }
        text += ": \(message)"
        if let requestID { text += " [request \(requestID)]" }
        return text
    }
}

extension S3Error {
    /// Classifies an HTTP error response from its status and the `<Error>` document S3 sends.
    init(status: Int, code: String?, message: String?, requestID: String?, resource: String) {
        let kind: Kind =
            switch AWSErrorClass(status: status, code: code) {
            case .throttled: .throttled
            case .timeout: .timeout
            case .clockSkewed: .clockSkewed
            case .expiredToken: .expiredToken
            case .badDigest: .badDigest
            case .invalidCredentials: .invalidCredentials
            case .signatureMismatch: .signatureMismatch
            case .noSuchBucket: .noSuchBucket
            case .noSuchKey: .noSuchKey
            case .noSuchUpload: .noSuchUpload
            case .accessDenied: .accessDenied
            case .server: .server
            case .invalidRequest: .invalidRequest
            case .preconditionFailed: .preconditionFailed
            case .entityTooLarge: .entityTooLarge
            }
        let text =
            message.flatMap { $0.isEmpty ? nil : $0 } ?? S3Error.defaultMessage(status: status, resource: resource)
        self.init(kind, text, httpStatus: status, awsCode: code, requestID: requestID)
    }

    /// HEAD responses carry no body: say what the status means.
    private static func defaultMessage(status: Int, resource: String) -> String {
        switch status {
        case 301, 307: "\(resource) is in another region or needs another endpoint"
        case 400: "\(resource): bad request"
        case 403: "access to \(resource) denied"
        case 404: "\(resource) not found"
        case 500..<600: "\(resource): server error"
        default: "\(resource): HTTP \(status)"
        }
    }

    /// A local file that could not be read as it was: missing or unreadable is permanent, a file that changed
    /// while it was read is tried again once it is stable.
    package init(_ error: LocalFileError) {
        switch error.kind {
        case .missing: self.init(.fileMissing, error.message)
        case .unreadable: self.init(.fileUnreadable, error.message)
        case .changed: self.init(.fileChanged, error.message)
        case .scratchSpace: self.init(.scratchSpace, error.message)
        case .stopped: self.init(.interrupted, error.message)
        }
    }

    /// A transport failure as an S3 error of the matching class.
    init(_ error: HTTPError) {
        let kind: Kind
        switch error.kind {
        case .dns, .connect, .network: kind = .network
        case .timeout, .stalled: kind = .timeout
        case .tls: kind = .tls
        case .bodyRead: kind = .fileChanged
        case .invalidRequest: kind = .invalidRequest
        case .ended: kind = .interrupted
        }
        self.init(
            kind,
            kind == .interrupted ? "stopped while it was sent (\(error.message)); nothing was stored" : error.message
        )
    }
}

extension S3Error {
    /// Runs one read of a local file, its failure as the matching S3 error.
    package static func reading<T>(_ read: () throws -> T) throws(S3Error) -> T {
        do {
            return try read()
        } catch let error as LocalFileError {
            throw S3Error(error)
        } catch {
            throw S3Error(.fileUnreadable, "\(error)")
        }
    }
}
