import FleetSystem
import Foundation

/// One HTTP request as the SigV4 signer sees it, before signing.
///
/// The path and the query hold decoded text; the signer does the encoding, exactly once. The path is never
/// normalised: S3 keys may contain `.`, `..` and `//`, and they are signed as they are sent.
package struct SigV4Request: Sendable {
    /// `GET`, `PUT`, `POST`, …
    package var method: String
    /// The value of the `Host` header, with `:port` when the port is not the scheme's default.
    package var host: String
    /// The raw (decoded) path, such as `/bucket/my key+1%.txt`; never normalised.
    package var path: String
    /// Decoded query names and values, in any order; a key without a value has the value `""`.
    package var query: [(name: String, value: String)]
    /// The headers to sign and send, excluding `Authorization` and the headers the signer adds
    /// (`X-Amz-Date`, `X-Amz-Security-Token`, `x-amz-content-sha256`); must include `Host`.
    package var headers: [(name: String, value: String)]
    /// The lowercase hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    package var payloadHash: String

    package init(
        method: String,
        host: String,
        path: String,
        query: [(name: String, value: String)],
        headers: [(name: String, value: String)],
        payloadHash: String
    ) {
        self.method = method
        self.host = host
        self.path = path
        self.query = query
        self.headers = headers
        self.payloadHash = payloadHash
    }
}

/// The result of signing one request: the intermediate texts (for tests and for diagnosing
/// `SignatureDoesNotMatch`) and the headers to send.
///
/// `description` names the signed headers only; it never shows the `Authorization` value or the session token.
package struct SigV4Signature: Sendable, CustomStringConvertible, CustomReflectable {
    /// The canonical request, as AWS documents it (method, URI, query, headers, signed headers, payload hash).
    package var canonicalRequest: String
    /// `AWS4-HMAC-SHA256`, the date, the credential scope and the hash of the canonical request.
    package var stringToSign: String
    /// The lowercase hex signature.
    package var signature: String
    /// The lowercase names of the signed headers, sorted and joined with `;`.
    package var signedHeaders: String
    /// The full value of the `Authorization` header.
    package var authorization: String
    /// The headers the signer added, to send along with the request's own: `X-Amz-Date`, `X-Amz-Security-Token`
    /// (with a session token), `x-amz-content-sha256` (when the signer adds it) and `Authorization`, last.
    package var headersToAdd: [(name: String, value: String)]

    package var description: String { "SigV4Signature(signed headers: \(signedHeaders))" }

    /// Keeps `dump` and debuggers to the same redacted view as `description`.
    package var customMirror: Mirror { Mirror(self, children: ["signedHeaders": signedHeaders]) }
}

/// Signs requests with AWS Signature Version 4, in its S3 flavour: the path is encoded once and never
/// normalised, and the signature goes into the `Authorization` header.
///
/// The steps follow the AWS documentation ("Create a signed AWS API request"): canonical request, string to sign,
/// signing key derived by an HMAC-SHA256 chain, signature. `description` names the service, the region and the
/// credentials' source and masked key id, never the secret or the session token.
package struct SigV4Signer: Sendable, CustomStringConvertible, CustomReflectable {
    package var credentials: AWSCredentials
    package var region: String
    /// The signing name of the service: `s3`, `sts`, `monitoring`, …
    package var service: String
    /// Whether the signer adds and signs `x-amz-content-sha256`, which S3 requires. Defaults to `service == "s3"`.
    package var addContentSHA256: Bool

    package static let algorithm = "AWS4-HMAC-SHA256"

    package init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
        self.addContentSHA256 = service == "s3"
    }

    package var description: String { "SigV4Signer(\(service), \(region), \(credentials))" }

    /// Keeps `dump` and debuggers away from the secret: the credentials appear only through their `description`.
    package var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "credentials": credentials.description, "region": region, "service": service,
                "addContentSHA256": addContentSHA256,
            ]
        )
    }

    // MARK: - Signing

    /// Signs `request` as of `date`.
    ///
    /// The signer adds `X-Amz-Date`, `X-Amz-Security-Token` (when the credentials carry a session token) and
    /// `x-amz-content-sha256` (when `addContentSHA256` is set), signs them with the request's own headers, and
    /// returns them with the `Authorization` header in `headersToAdd`.
    ///
    /// A request without exactly one `Host` header equal to `request.host`, or one that already carries a header
    /// the signer adds (or `Authorization`), is a programmer error and stops the process.
    ///
    /// - Parameters:
    ///   - request: The request to sign.
    ///   - date: The signing time; only whole seconds count, in UTC.
    /// - Returns: The signature, its intermediate texts and the headers to send.
    package func sign(_ request: SigV4Request, at date: Date) -> SigV4Signature {
        var keys = SigV4KeyCache()
        return sign(request, at: date, keys: &keys)
    }

    /// Signs `request` as of `date`, taking the signing key from `keys` when it holds the one for this day (a
    /// client that signs request after request derives it once a day instead of every time).
    package func sign(_ request: SigV4Request, at date: Date, keys: inout SigV4KeyCache) -> SigV4Signature {
        let amzDate = Self.amzDate(date)
        let day = String(amzDate.prefix(8))

        var added: [(name: String, value: String)] = [("X-Amz-Date", amzDate)]
        if let token = credentials.sessionToken {
            added.append(("X-Amz-Security-Token", token))
        }
        if addContentSHA256 {
            added.append(("x-amz-content-sha256", request.payloadHash))
        }

        let hostValues = request.headers.filter { $0.name.lowercased() == "host" }.map(\.value)
        precondition(hostValues == [request.host], "SigV4Request needs exactly one Host header equal to its host")
        let reserved = Set(added.map { $0.name.lowercased() } + ["authorization"])
        precondition(
            !request.headers.contains { reserved.contains($0.name.lowercased()) },
            "SigV4Request headers must not include Authorization or the headers the signer adds"
        )

        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(request.headers + added)
        let canonicalRequest = [
            request.method,
            Self.canonicalURI(request.path),
            Self.canonicalQuery(request.query),
            canonicalHeaders,
            signedHeaders,
            request.payloadHash,
        ].joined(separator: "\n")

        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            Self.algorithm, amzDate, scope, SHA256.hex(of: Array(canonicalRequest.utf8)),
        ].joined(separator: "\n")

        let key = keys.key(secret: credentials.secretAccessKey, date: day, region: region, service: service)
        let signature = SHA256.hmac(key: key, message: Array(stringToSign.utf8)).hexString
        let authorization =
            "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), "
            + "Signature=\(signature)"
        added.append(("Authorization", authorization))

        return SigV4Signature(
            canonicalRequest: canonicalRequest,
            stringToSign: stringToSign,
            signature: signature,
            signedHeaders: signedHeaders,
            authorization: authorization,
            headersToAdd: added
        )
    }

    /// The SigV4 signing key: HMAC-SHA256 chained over `"AWS4" + secret`, the date, the region, the service and
    /// `aws4_request`.
    ///
    /// - Parameters:
    ///   - secret: The secret access key.
    ///   - date: The day of the signing time, `yyyyMMdd` in UTC.
    ///   - region: The region, such as `us-east-1`.
    ///   - service: The service's signing name, such as `s3`.
    /// - Returns: The 32-byte key.
    package static func signingKey(secret: String, date: String, region: String, service: String) -> [UInt8] {
        var key = Array(("AWS4" + secret).utf8)
        for part in [date, region, service, "aws4_request"] {
            key = SHA256.hmac(key: key, message: Array(part.utf8))
        }
        return key
    }

    // MARK: - Canonical form

    /// The URI encoding AWS specifies: RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) stay, every other
    /// byte of the UTF-8 form becomes `%XX` in uppercase hex, and `/` stays when `encodingSlash` is false.
    ///
    /// - Parameters:
    ///   - text: Decoded text: a path, or a query name or value.
    ///   - encodingSlash: Whether `/` becomes `%2F` (query parts) or stays (paths).
    /// - Returns: The encoded text.
    package static func uriEncode(_ text: String, encodingSlash: Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where !encodingSlash:
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The path encoded once, `/` kept, with no removal of `.`, `..` or empty segments; `/` for an empty path.
    static func canonicalURI(_ path: String) -> String {
        path.isEmpty ? "/" : uriEncode(path, encodingSlash: false)
    }

    /// Names and values encoded (`/` too), sorted by encoded name then encoded value, `name=value` joined by `&`.
    static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        query.map { (name: uriEncode($0.name, encodingSlash: true), value: uriEncode($0.value, encodingSlash: true)) }
            .sorted { a, b in
                a.name == b.name
                    ? a.value.utf8.lexicographicallyPrecedes(b.value.utf8)
                    : a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
            }
            .map { "\($0.name)=\($0.value)" }
            .joined(separator: "&")
    }

    /// The canonical header block (each `name:value` followed by a newline) and the signed-header list.
    ///
    /// Names are lowercased; values are trimmed and inner runs of spaces collapse to one; headers that share a
    /// name are joined with `,` in the order they appear; the result is sorted by name.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (block: String, signed: String) {
        var valuesByName: [String: [String]] = [:]
        for header in headers {
            valuesByName[header.name.lowercased(), default: []].append(canonicalHeaderValue(header.value))
        }
        let names = valuesByName.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let block = names.map { "\($0):\(valuesByName[$0, default: []].joined(separator: ","))\n" }.joined()
        return (block, names.joined(separator: ";"))
    }

    /// A header value with leading and trailing spaces and tabs removed and inner runs of spaces collapsed to one.
    static func canonicalHeaderValue(_ value: String) -> String {
        let space = UInt8(ascii: " ")
        let isBlank = { (byte: UInt8) in byte == space || byte == UInt8(ascii: "\t") }
        let bytes = Array(value.utf8)
        guard let first = bytes.firstIndex(where: { !isBlank($0) }), let last = bytes.lastIndex(where: { !isBlank($0) })
        else { return "" }
        var out = [UInt8]()
        out.reserveCapacity(last - first + 1)
        for byte in bytes[first...last] where !(byte == space && out.last == space) {
            out.append(byte)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC, from whole seconds, by integer arithmetic.
    static func amzDate(_ date: Date) -> String {
        let seconds = Timestamp(date).seconds
        let (year, month, day) = Timestamp.civilFromDays(seconds.floorDiv(86_400))
        let secondOfDay = seconds.floorMod(86_400)
        func digits(_ value: Int64, _ width: Int) -> String { String(value).leftPadded(to: width) }
        return digits(year, 4) + digits(month, 2) + digits(day, 2) + "T" + digits(secondOfDay / 3600, 2)
            + digits(secondOfDay % 3600 / 60, 2) + digits(secondOfDay % 60, 2) + "Z"
    }
}

/// The signing key last derived and what it was derived from: a key depends only on the secret, the day, the
/// region and the service, so a client signing request after request needs one HMAC per request instead of five.
///
/// Holds a secret: `dump` and debuggers see only the day.
package struct SigV4KeyCache: CustomReflectable {
    private struct Inputs: Equatable {
        var secret: String
        var date: String
        var region: String
        var service: String
    }

    private var inputs: Inputs?
    private var cached: [UInt8] = []

    package init() {}

    /// The signing key for these inputs, derived only when they differ from the last ones.
    mutating func key(secret: String, date: String, region: String, service: String) -> [UInt8] {
        let wanted = Inputs(secret: secret, date: date, region: region, service: service)
        if wanted != inputs {
            cached = SigV4Signer.signingKey(secret: secret, date: date, region: region, service: service)
            inputs = wanted
        }
        return cached
    }

    package var customMirror: Mirror { Mirror(self, children: ["date": inputs?.date ?? ""]) }
}
