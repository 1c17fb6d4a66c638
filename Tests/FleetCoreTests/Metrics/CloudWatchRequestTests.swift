import FleetSystem
import Foundation
import Testing

@testable import FleetAWS
@testable import FleetCore

struct CloudWatchRequestTests {
    private static let keys = AWSCredentials(
        accessKeyID: "AKIDEXAMPLE",
        secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        source: "test"
    )
    /// 2026-11-23T18:00:00.123Z, 18:01:00Z and the signing time 18:02:03Z.
    private static let runTime = Date(timeIntervalSince1970: 1_795_456_800.123)
    private static let heartbeatTime = Date(timeIntervalSince1970: 1_795_456_860)
    private static let signingTime = Date(timeIntervalSince1970: 1_795_456_923)

    private static func client(region: String, endpoint: String? = nil) throws -> CloudWatchClient {
        let chain = CredentialChain(profile: nil, environment: [:], homeDirectory: "/nonexistent") { nil }
        return try CloudWatchClient(
            endpoint: endpoint,
            region: region,
            namespace: "TVM/Upload",
            vehicleID: "vehicle-CN-001",
            credentials: CredentialProvider(chain: chain)
        )
    }

    private static let runAndHeartbeat = [
        MetricDatum(.bytesUploaded, 1_048_576, at: runTime),
        MetricDatum(.fileCount, 3, at: runTime),
        MetricDatum(.failureCount, 1, at: runTime),
        MetricDatum(.diskUsagePercent, 87.5, at: heartbeatTime),
    ]

    // The expected bodies and Authorization headers below were produced once with botocore 1.43.11 (not with
    // this code): its Query serializer (`botocore.serialize.create_serializer("query")` with the cloudwatch
    // model's PutMetricData) turned the same four data (timestamps at whole seconds) into the form fields, and
    // `botocore.auth.SigV4Auth(credentials, "monitoring", region).add_auth` signed a POST of that body with
    // `Content-Type: application/x-www-form-urlencoded; charset=utf-8`, with `get_current_datetime` patched to
    // return 2026-11-23T18:02:03Z. botocore form-encodes with `urlencode`, which agrees with our RFC 3986
    // encoding for these values.

    @Test func putMetricDataBodyAndSignatureMatchBotocore() throws {
        let client = try Self.client(region: "us-east-1")
        let request = client.request(for: Self.runAndHeartbeat[...], credentials: Self.keys, at: Self.signingTime)

        let expectedBody =
            "Action=PutMetricData&Version=2010-08-01&Namespace=TVM%2FUpload"
            + "&MetricData.member.1.MetricName=BytesUploaded&MetricData.member.1.Dimensions.member.1.Name=VehicleId"
            + "&MetricData.member.1.Dimensions.member.1.Value=vehicle-CN-001"
            + "&MetricData.member.1.Timestamp=2026-11-23T18%3A00%3A00Z&MetricData.member.1.Value=1048576"
            + "&MetricData.member.1.Unit=Bytes"
            + "&MetricData.member.2.MetricName=FileCount&MetricData.member.2.Dimensions.member.1.Name=VehicleId"
            + "&MetricData.member.2.Dimensions.member.1.Value=vehicle-CN-001"
            + "&MetricData.member.2.Timestamp=2026-11-23T18%3A00%3A00Z&MetricData.member.2.Value=3"
            + "&MetricData.member.2.Unit=Count"
            + "&MetricData.member.3.MetricName=FailureCount&MetricData.member.3.Dimensions.member.1.Name=VehicleId"
            + "&MetricData.member.3.Dimensions.member.1.Value=vehicle-CN-001"
            + "&MetricData.member.3.Timestamp=2026-11-23T18%3A00%3A00Z&MetricData.member.3.Value=1"
            + "&MetricData.member.3.Unit=Count"
            + "&MetricData.member.4.MetricName=DiskUsagePercent"
            + "&MetricData.member.4.Dimensions.member.1.Name=VehicleId"
            + "&MetricData.member.4.Dimensions.member.1.Value=vehicle-CN-001"
            + "&MetricData.member.4.Timestamp=2026-11-23T18%3A01%3A00Z&MetricData.member.4.Value=87.5"
            + "&MetricData.member.4.Unit=Percent"
        guard case .bytes(let body) = request.body else {
            Issue.record("the body is not in memory")
            return
        }
        #expect(String(decoding: body, as: UTF8.self) == expectedBody)
        #expect(request.method == "POST")
        #expect(request.url == "https://monitoring.us-east-1.amazonaws.com/")
        #expect(header("Content-Type", in: request) == "application/x-www-form-urlencoded; charset=utf-8")
        #expect(header("Host", in: request) == "monitoring.us-east-1.amazonaws.com")
        #expect(header("X-Amz-Date", in: request) == "20261123T180203Z")
        #expect(header("x-amz-content-sha256", in: request) == nil, "only S3 wants the payload hash header")
        #expect(
            header("Authorization", in: request)
                == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/us-east-1/monitoring/aws4_request, "
                + "SignedHeaders=content-type;host;x-amz-date, "
                + "Signature=41f535e17eceff8e5e9cb89c23fbbdde85b03740885858411469fdfd800f968d"
        )
    }

    @Test func chinaRegionsUseTheAmazonawsComCnEndpointAndSignWithTheSessionToken() throws {
        let client = try Self.client(region: "cn-north-1")
        var keys = Self.keys
        keys.sessionToken = "session-token-example"
        let request = client.request(for: Self.runAndHeartbeat[3...], credentials: keys, at: Self.signingTime)

        #expect(request.url == "https://monitoring.cn-north-1.amazonaws.com.cn/")
        #expect(header("Host", in: request) == "monitoring.cn-north-1.amazonaws.com.cn")
        #expect(header("X-Amz-Security-Token", in: request) == "session-token-example")
        #expect(
            header("Authorization", in: request)
                == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/cn-north-1/monitoring/aws4_request, "
                + "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "
                + "Signature=8b2ab33c3d42aa85c68d1ebbf55f0a3215043bb2a522d191d5d00ba49af4c32e"
        )
        #expect(try Self.client(region: "cn-northwest-1").authority == "monitoring.cn-northwest-1.amazonaws.com.cn")
        #expect(try Self.client(region: "eu-west-1").authority == "monitoring.eu-west-1.amazonaws.com")
    }

    @Test func aConfiguredEndpointKeepsItsSchemePortAndPath() throws {
        let client = try Self.client(region: "cn-north-1", endpoint: "http://127.0.0.1:8080")
        #expect(client.url == "http://127.0.0.1:8080/")
        #expect(client.authority == "127.0.0.1:8080")
        #expect(client.region == "cn-north-1", "the signing region stays the configured one")
        #expect(
            try Self.client(region: "us-east-1", endpoint: "https://vpce.example/cw").url == "https://vpce.example/cw"
        )
        #expect(throws: ConfigError.self) { try Self.client(region: "us-east-1", endpoint: "ftp://example") }
    }

    @Test func moreThanAThousandDataAreSplitIntoRequestsNumberedFromOne() throws {
        let client = try Self.client(region: "us-east-1")
        let data = (0..<2_345).map { MetricDatum(.fileCount, Double($0), at: Self.runTime) }
        let batches = CloudWatchClient.batches(data)
        #expect(batches.map(\.count) == [1000, 1000, 345])
        #expect(batches.flatMap { $0 } == data)
        for batch in batches {
            let fields = client.body(for: batch).split(separator: "&").map(String.init)
            let members = fields.filter { $0.hasSuffix(".MetricName=FileCount") }
            #expect(members.count == batch.count)
            #expect(members.first == "MetricData.member.1.MetricName=FileCount")
            #expect(members.last == "MetricData.member.\(batch.count).MetricName=FileCount")
            #expect(fields.contains("MetricData.member.1.Value=\(batch.startIndex)"))
        }
        #expect(CloudWatchClient.batches([]).isEmpty)
    }

    @Test func valuesAndTimestampsAreWrittenPlainly() {
        #expect(CloudWatchClient.number(1_048_576) == "1048576")
        #expect(CloudWatchClient.number(0) == "0")
        #expect(CloudWatchClient.number(87.5) == "87.5")
        #expect(CloudWatchClient.number(1e20) == "1e+20")
        #expect(CloudWatchClient.timestamp(Self.runTime) == "2026-11-23T18:00:00Z")
    }

    @Test(arguments: [
        (400, "InvalidParameterValue", CloudWatchError.Kind.invalidRequest),
        (400, "Throttling", .throttled), (403, "AccessDenied", .accessDenied),
        (403, "InvalidClientTokenId", .invalidCredentials), (403, "SignatureDoesNotMatch", .signatureMismatch),
        (403, "ExpiredToken", .expiredToken), (500, "InternalFailure", .server), (503, "", .server),
        (429, "", .throttled),
    ])
    func errorResponsesAreClassified(status: Int, code: String, kind: CloudWatchError.Kind) {
        let document =
            code.isEmpty
            ? "<html>Service Unavailable</html>"
            : """
            <ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">
              <Error><Type>Sender</Type><Code>\(code)</Code><Message>The detail.</Message></Error>
              <RequestId>c3a7c0b6-0000-4000-8000-000000000000</RequestId>
            </ErrorResponse>
            """
        let error = CloudWatchError(status: status, body: Array(document.utf8))
        #expect(error.kind == kind)
        #expect(error.httpStatus == status)
        #expect(error.awsCode == (code.isEmpty ? nil : code))
        #expect(error.message == (code.isEmpty ? "HTTP \(status) from PutMetricData" : "The detail."))
    }

    @Test func configurationIsValidated() throws {
        func problems(_ settings: CloudWatchSettings) -> [String] { settings.problems().map(\.key) }
        #expect(problems(CloudWatchSettings(enabled: true)).isEmpty)
        #expect(problems(CloudWatchSettings(namespace: "")) == ["namespace"])
        #expect(problems(CloudWatchSettings(namespace: String(repeating: "n", count: 256))) == ["namespace"])
        #expect(problems(CloudWatchSettings(namespace: String(repeating: "n", count: 255))).isEmpty)
        #expect(problems(CloudWatchSettings(namespace: ":AWS/EC2")) == ["namespace"])
        #expect(problems(CloudWatchSettings(endpoint: "127.0.0.1:8080")) == ["endpoint"])
        #expect(problems(CloudWatchSettings(endpoint: "http://127.0.0.1:8080")).isEmpty)
        #expect(problems(CloudWatchSettings(region: "CN North")) == ["region"])
        #expect(problems(CloudWatchSettings(vehicleId: "")) == ["vehicle_id"])
        #expect(problems(CloudWatchSettings(flushSeconds: 0)) == ["flush_seconds"])

        let document = try ConfigValue.parseYAML(
            """
            project: { name: p }
            s3: { bucket: fleet-data }
            source: { path: /tmp }
            metrics: { cloudwatch: { enabled: true, namespace: ":bad" } }
            """
        )
        #expect {
            try ConfigLoader.decode(document)
        } throws: { error in
            (error as? ConfigError)?.keyPath == "metrics.cloudwatch.namespace"
        }
        let good = try ConfigLoader.decode(
            try ConfigValue.parseYAML(
                """
                project: { name: p }
                s3: { bucket: fleet-data }
                source: { path: /tmp }
                metrics: { cloudwatch: { enabled: true, vehicle_id: vehicle-CN-001 } }
                """
            )
        )
        #expect(good.resolved.metrics.cloudwatch.enabled)
        #expect(good.resolved.metrics.cloudwatch.vehicleId == "vehicle-CN-001")
    }

    private func header(_ name: String, in request: HTTPRequest) -> String? {
        let values = request.headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        #expect(values.count <= 1, "\(name) appears \(values.count) times")
        return values.first
    }
}
