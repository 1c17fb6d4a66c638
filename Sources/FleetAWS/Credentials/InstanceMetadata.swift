import FleetSystem
import Foundation

/// EC2 instance-role credentials through the instance metadata service, version 2 (a session token first,
/// then the role's credentials).
///
/// Off EC2 nothing answers at 169.254.169.254; the connect timeout is one second, so a laptop does not
/// hang. `AWS_EC2_METADATA_SERVICE_ENDPOINT` points it elsewhere (tests use a local server).
package struct InstanceMetadata: Sendable {
    package var endpoint: String
    package var timeouts: HTTPTimeouts

    package init(environment: [String: String]) {
        endpoint =
            environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"].map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
            ?? "http://169.254.169.254"
        timeouts = HTTPTimeouts(connectSeconds: 1, stallBytesPerSecond: 1, stallSeconds: 2, totalSeconds: 3)
    }

    /// The role's credentials, or `nil` when no metadata service answers (not on EC2).
    ///
    /// - Throws: `CredentialsError` when the service answers but gives no usable credentials (no role
    ///   attached, malformed document).
    package func credentials() throws -> AWSCredentials? {
        let curl = try CurlEasy()
        let tokenResponse: HTTPResponse
        do {
            tokenResponse = try curl.perform(
                HTTPRequest(
                    method: "PUT",
                    url: endpoint + "/latest/api/token",
                    headers: [("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
                    timeouts: timeouts
                )
            )
        } catch {
            return nil  // nothing listens: not on EC2
        }
        guard tokenResponse.status == 200 else { return nil }
        let token = [("X-aws-ec2-metadata-token", tokenResponse.bodyText)]
        let base = endpoint + "/latest/meta-data/iam/security-credentials/"
        let roles = try curl.perform(HTTPRequest(method: "GET", url: base, headers: token, timeouts: timeouts))
        guard roles.status == 200, let role = roles.bodyText.split(whereSeparator: \.isNewline).first.map(String.init),
            !role.isEmpty
        else {
            throw CredentialsError(
                .notFound,
                "the EC2 instance has no IAM role attached (metadata answered HTTP \(roles.status))",
                hint: "attach an instance profile with s3:PutObject, or configure credentials"
            )
        }
        let document = try curl.perform(
            HTTPRequest(method: "GET", url: base + role, headers: token, timeouts: timeouts)
        )
        struct RoleCredentials: Decodable {
            var AccessKeyId: String
            var SecretAccessKey: String
            var Token: String?
            var Expiration: String?
        }
        guard document.status == 200,
            let decoded = try? JSONDecoder().decode(RoleCredentials.self, from: Data(document.body))
        else {
            throw CredentialsError(
                .notFound,
                "the EC2 metadata service gave no credentials for role \(role) (HTTP \(document.status))",
                hint: "check the instance profile"
            )
        }
        let expiration = decoded.Expiration.flatMap { ISO8601DateFormatter().date(from: $0) }
        return AWSCredentials(
            accessKeyID: decoded.AccessKeyId,
            secretAccessKey: decoded.SecretAccessKey,
            sessionToken: decoded.Token,
            expiration: expiration,
            source: "EC2 instance role \(role)"
        )
    }
}
