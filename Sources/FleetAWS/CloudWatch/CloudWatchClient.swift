import FleetSystem
import Foundation

/// Sends metric data to CloudWatch with PutMetricData, through the AWS Query API: a form-encoded POST signed
/// with SigV4 for the service `monitoring`.
///
/// The endpoint is `https://monitoring.<region>.amazonaws.com`, `.amazonaws.com.cn` in the China regions
/// (`S3Endpoint.awsHost`), unless `metrics.cloudwatch.endpoint` names another. Credentials come from the same
/// provider as S3's. Every datum carries the one dimension `VehicleId`.
package struct CloudWatchClient: Sendable {
    /// PutMetricData takes at most this many data per request.
    package static let maximumDataPerRequest = 1000
    package static let apiVersion = "2010-08-01"
    package static let contentType = "application/x-www-form-urlencoded; charset=utf-8"

    package var scheme: String
    /// Host and, when not the scheme's default, `:port`.
    package var authority: String
    /// The request path: `/`, or the path of a configured endpoint.
    package var path: String
    package var region: String
    package var namespace: String
    package var vehicleID: String
    package var credentials: CredentialProvider
    package var timeouts = HTTPTimeouts(connectSeconds: 10, stallSeconds: 15, totalSeconds: 30)

    /// - Parameters:
    ///   - endpoint: An http(s) URL to send to; nil for AWS's endpoint in `region`.
    ///   - region: The signing region, and the endpoint's when `endpoint` is nil.
    ///   - namespace: Such as `TVM/Upload`.
    ///   - vehicleID: The value of the `VehicleId` dimension.
    ///   - credentials: Where the signing keys come from.
    /// - Throws: `ConfigError` for an endpoint that is not an http(s) URL with a host.
    package init(
        endpoint: String?,
        region: String,
        namespace: String,
        vehicleID: String,
        credentials: CredentialProvider
    ) throws(ConfigError) {
        if let endpoint {
            guard let url = URLComponents(string: endpoint), let scheme = url.scheme?.lowercased(),
                scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
            else {
                throw ConfigError(
                    keyPath: "metrics.cloudwatch.endpoint",
                    "must be an http:// or https:// URL with a host, got '\(endpoint)'"
                )
            }
            self.scheme = scheme
            authority = url.port.map { "\(host):\($0)" } ?? host
            path = url.path.isEmpty ? "/" : url.path
        } else {
            scheme = "https"
            authority = S3Endpoint.awsHost(service: "monitoring", region: region)
            path = "/"
        }
        self.region = region
        self.namespace = namespace
        self.vehicleID = vehicleID
        self.credentials = credentials
    }

    package var url: String { "\(scheme)://\(authority)\(path)" }

    // MARK: - Requests

    /// `data` cut into requests' worth: at most `maximumDataPerRequest` each, in order.
    package static func batches(_ data: [MetricDatum]) -> [ArraySlice<MetricDatum>] {
        stride(from: 0, to: data.count, by: maximumDataPerRequest).map {
            data[$0..<min($0 + maximumDataPerRequest, data.count)]
        }
    }

    /// The form-encoded body of one PutMetricData request, in botocore's parameter order; members are numbered
    /// from 1 in each request.
    package func body(for data: ArraySlice<MetricDatum>) -> String {
        precondition(data.count <= Self.maximumDataPerRequest, "PutMetricData takes at most 1000 data")
        var fields = [("Action", "PutMetricData"), ("Version", Self.apiVersion), ("Namespace", namespace)]
        for (index, datum) in data.enumerated() {
            let member = "MetricData.member.\(index + 1)"
            fields += [
                ("\(member).MetricName", datum.name.rawValue),
                ("\(member).Dimensions.member.1.Name", "VehicleId"),
                ("\(member).Dimensions.member.1.Value", vehicleID),
                ("\(member).Timestamp", Self.timestamp(datum.timestamp)),
                ("\(member).Value", Self.number(datum.value)),
                ("\(member).Unit", datum.name.unit),
            ]
        }
        return fields.map {
            SigV4Signer.uriEncode($0.0, encodingSlash: true) + "=" + SigV4Signer.uriEncode($0.1, encodingSlash: true)
        }.joined(separator: "&")
    }

    /// The signed POST for one batch.
    ///
    /// - Parameters:
    ///   - data: At most `maximumDataPerRequest` data.
    ///   - credentials: The signing keys.
    ///   - date: The signing time.
    package func request(
        for data: ArraySlice<MetricDatum>,
        credentials: AWSCredentials,
        at date: Date
    ) -> HTTPRequest {
        let body = Array(body(for: data).utf8)
        let headers = [("Host", authority), ("Content-Type", Self.contentType)]
        let signer = SigV4Signer(credentials: credentials, region: region, service: "monitoring")
        let signature = signer.sign(
            SigV4Request(
                method: "POST",
                host: authority,
                path: path,
                query: [],
                headers: headers,
                payloadHash: SHA256.hex(of: body)
            ),
            at: date
        )
        return HTTPRequest(
            method: "POST",
            url: url,
            headers: headers + signature.headersToAdd,
            body: .bytes(body),
            timeouts: timeouts
        )
    }

    /// Sends one batch and checks the answer.
    ///
    /// - Parameters:
    ///   - data: At most `maximumDataPerRequest` data.
    ///   - curl: The calling thread's handle.
    ///   - date: The signing time.
    /// - Throws: `CloudWatchError`: no credentials, no response, or an error response.
    package func put(_ data: ArraySlice<MetricDatum>, with curl: CurlEasy, at date: Date) throws(CloudWatchError) {
        let keys: AWSCredentials
        do {
            keys = try credentials.credentials()
        } catch {
            throw CloudWatchError(.credentials, "\(error)")
        }
        let response: HTTPResponse
        do {
            response = try curl.perform(request(for: data, credentials: keys, at: date))
        } catch {
            throw CloudWatchError(error)
        }
        guard (200..<300).contains(response.status) else {
            let error = CloudWatchError(status: response.status, body: response.body)
            if error.kind == .expiredToken { credentials.invalidate() }
            throw error
        }
    }

    /// `2026-11-23T18:00:00Z`: ISO 8601 in UTC, whole seconds (CloudWatch's finest resolution is one second).
    static func timestamp(_ date: Date) -> String {
        String(Timestamp(date).rfc3339.prefix(19)) + "Z"
    }

    /// `1234` for whole numbers (no `.0`), else Swift's shortest form (`87.5`).
    static func number(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
