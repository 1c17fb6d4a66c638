import FleetSystem
import Foundation

/// Where requests for a region or a custom endpoint go, and how buckets are addressed.
///
/// - AWS: `https://s3.<region>.amazonaws.com`, and `.amazonaws.com.cn` for `cn-north-1` and `cn-northwest-1`;
///   virtual-hosted style (`bucket.s3.<region>…`) unless the bucket name is not DNS-safe or has dots (its
///   certificate would not match) or path style is configured.
/// - A custom endpoint (config `s3.endpoint`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`): as given,
///   path style unless `s3.path_style: false`.
package struct S3Endpoint: Sendable, Equatable, CustomStringConvertible {
    package var scheme: String
    /// Host and, when not the scheme's default, `:port`.
    package var authority: String
    package var region: String
    package var forcePathStyle: Bool
    /// True for AWS's own endpoints (where STS exists at a known address).
    package var isAWS: Bool
    /// A PEM file of certificate authorities trusted for this endpoint (`s3.ca_bundle`, else
    /// `AWS_CA_BUNDLE`); `nil` trusts the system's. `S3Context` fills it in.
    package var caBundle: String?

    package var description: String { "\(scheme)://\(authority)" }

    /// Resolves the endpoint for `region`.
    ///
    /// - Throws: `ConfigError` for an endpoint that is not an http(s) URL with a host, or that carries a user
    ///   name or password, a port outside 1…65535, a path, a query or a fragment.
    package static func resolve(
        region: String,
        endpoint: String?,
        pathStyle: Bool?,
        environment: [String: String]
    ) throws(ConfigError) -> S3Endpoint {
        let nonEmpty = { (name: String) in environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        let custom = endpoint ?? nonEmpty("AWS_ENDPOINT_URL_S3") ?? nonEmpty("AWS_ENDPOINT_URL")
        if let custom {
            let origin =
                endpoint != nil
                ? "s3.endpoint"
                : environment["AWS_ENDPOINT_URL_S3"] != nil
                    ? "AWS_ENDPOINT_URL_S3" : "AWS_ENDPOINT_URL"
            guard let url = URLComponents(string: custom), let scheme = url.scheme?.lowercased(),
                scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
            else {
                throw ConfigError(
                    keyPath: origin,
                    "must be an http:// or https:// URL with a host, got '\(redacted(custom))'"
                )
            }
            // Everything but scheme, host and port would be dropped or leak: refuse it instead.
            guard url.user == nil, url.password == nil else {
                throw ConfigError(
                    keyPath: origin,
                    "must not carry a user name or password (credentials come from the AWS chain), got '\(redacted(custom))'"
                )
            }
            if let port = url.port, !(1...65535).contains(port) {
                throw ConfigError(keyPath: origin, "port must be 1…65535, got \(port)")
            }
            guard url.path.isEmpty || url.path == "/", url.query == nil, url.fragment == nil else {
                throw ConfigError(
                    keyPath: origin,
                    "must be scheme, host and port only (buckets and keys are added to it), got '\(custom)'"
                )
            }
            let authority = url.port.map { "\(host):\($0)" } ?? host
            return S3Endpoint(
                scheme: scheme,
                authority: authority,
                region: region,
                forcePathStyle: pathStyle ?? true,
                isAWS: false
            )
        }
        return S3Endpoint(
            scheme: "https",
            authority: awsHost(service: "s3", region: region),
            region: region,
            forcePathStyle: pathStyle ?? false,
            isAWS: true
        )
    }

    /// `amazonaws.com.cn` for the China regions, `amazonaws.com` elsewhere.
    package static func awsDomain(_ region: String) -> String {
        region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
    }

    /// Where AWS serves a regional service: `<service>.<region>.amazonaws.com`, `.amazonaws.com.cn` in China
    /// (`s3`, `sts`, `monitoring`).
    package static func awsHost(service: String, region: String) -> String {
        "\(service).\(region).\(awsDomain(region))"
    }

    /// Host, raw path and URL prefix for a bucket (and key).
    package func address(bucket: String, key: String? = nil) -> (host: String, path: String) {
        let keyPath = key.map { "/" + $0 } ?? "/"
        if forcePathStyle || !S3Endpoint.isVirtualHostable(bucket, scheme: scheme) {
            return (authority, "/" + bucket + (key.map { "/" + $0 } ?? ""))
        }
        return ("\(bucket).\(authority)", keyPath)
    }

    /// Where to ask STS: `sts.<region>.amazonaws.com(.cn)` on AWS; a custom endpoint itself (some
    /// S3-compatible servers answer GetCallerIdentity, others do not).
    package var stsAuthority: String { isAWS ? S3Endpoint.awsHost(service: "sts", region: region) : authority }

    /// Lowercase letters, digits and hyphens only (dots break TLS name matching on virtual hosts).
    static func isVirtualHostable(_ bucket: String, scheme: String) -> Bool {
        guard BucketName.problem(with: bucket) == nil else { return false }
        return scheme == "http" || !bucket.contains(".")
    }

    /// `text` with any `user:password@` removed, for messages.
    static func redacted(_ text: String) -> String {
        guard let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].firstIndex(of: "@") else {
            return text
        }
        let slash = text[scheme.upperBound...].firstIndex(of: "/") ?? text.endIndex
        guard at < slash else { return text }
        return String(text[..<scheme.upperBound]) + "…@" + text[text.index(after: at)...]
    }
}
