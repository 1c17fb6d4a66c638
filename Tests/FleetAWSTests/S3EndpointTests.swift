import FleetSystem
import Testing

@testable import FleetAWS

struct S3EndpointTests {
    private static func aws(_ region: String, pathStyle: Bool? = nil) throws -> S3Endpoint {
        try S3Endpoint.resolve(region: region, endpoint: nil, pathStyle: pathStyle, environment: [:])
    }

    private static func custom(
        _ endpoint: String?,
        pathStyle: Bool? = nil,
        environment: [String: String] = [:]
    ) throws -> S3Endpoint {
        try S3Endpoint.resolve(region: "eu-west-1", endpoint: endpoint, pathStyle: pathStyle, environment: environment)
    }

    // MARK: - AWS endpoints

    @Test(arguments: ["us-east-1", "eu-west-1", "eu-central-2", "ap-southeast-2", "us-gov-west-1"])
    func awsRegionResolvesToRegionalHTTPSEndpoint(region: String) throws {
        let endpoint = try Self.aws(region)
        #expect(endpoint.description == "https://s3.\(region).amazonaws.com")
        #expect(endpoint.scheme == "https")
        #expect(endpoint.authority == "s3.\(region).amazonaws.com")
        #expect(endpoint.region == region)
        #expect(endpoint.isAWS)
        #expect(!endpoint.forcePathStyle)
        #expect(endpoint.stsAuthority == "sts.\(region).amazonaws.com")
    }

    @Test(arguments: ["cn-north-1", "cn-northwest-1"])
    func chinaRegionResolvesToChinaDomainForS3AndSTS(region: String) throws {
        let endpoint = try Self.aws(region)
        #expect(endpoint.description == "https://s3.\(region).amazonaws.com.cn")
        #expect(endpoint.stsAuthority == "sts.\(region).amazonaws.com.cn")
        #expect(endpoint.isAWS)
    }

    @Test func customEndpointAsksItselfForSTS() throws {
        let endpoint = try Self.custom("http://localhost:9000")
        #expect(!endpoint.isAWS)
        #expect(endpoint.stsAuthority == "localhost:9000")
    }

    // MARK: - Bucket addressing

    @Test func awsAddressesBucketsVirtualHosted() throws {
        let endpoint = try Self.aws("eu-west-1")
        let object = endpoint.address(bucket: "fleet-data", key: "logs/2025/a.bag")
        #expect(object.host == "fleet-data.s3.eu-west-1.amazonaws.com")
        #expect(object.path == "/logs/2025/a.bag")
        let bucket = endpoint.address(bucket: "fleet-data")
        #expect(bucket.host == "fleet-data.s3.eu-west-1.amazonaws.com")
        #expect(bucket.path == "/")
    }

    @Test func chinaRegionAddressesBucketsVirtualHostedOnChinaDomain() throws {
        let address = try Self.aws("cn-north-1").address(bucket: "t01logs", key: "a.log")
        #expect(address.host == "t01logs.s3.cn-north-1.amazonaws.com.cn")
        #expect(address.path == "/a.log")
    }

    @Test func configuredPathStyleKeepsBucketInPath() throws {
        let endpoint = try Self.aws("eu-west-1", pathStyle: true)
        #expect(endpoint.forcePathStyle)
        let object = endpoint.address(bucket: "fleet-data", key: "logs/a.bag")
        #expect(object.host == "s3.eu-west-1.amazonaws.com")
        #expect(object.path == "/fleet-data/logs/a.bag")
        let bucket = endpoint.address(bucket: "fleet-data")
        #expect(bucket.host == "s3.eu-west-1.amazonaws.com")
        #expect(bucket.path == "/fleet-data")
    }

    @Test func dottedBucketOverHTTPSUsesPathStyle() throws {
        let address = try Self.aws("us-east-1").address(bucket: "fleet.example.com", key: "k")
        #expect(address.host == "s3.us-east-1.amazonaws.com")
        #expect(address.path == "/fleet.example.com/k")
    }

    @Test func dottedBucketOverHTTPCanBeVirtualHosted() throws {
        let endpoint = try Self.custom("http://minio.local:9000", pathStyle: false)
        let address = endpoint.address(bucket: "fleet.data", key: "k")
        #expect(address.host == "fleet.data.minio.local:9000")
        #expect(address.path == "/k")
    }

    @Test(arguments: ["Fleet-Data", "fleet_data", "ab", "-fleet", "fleet-", "fleet..data", "192.168.1.1"])
    func bucketNameThatIsNotDNSSafeUsesPathStyle(bucket: String) throws {
        let address = try Self.aws("eu-west-1").address(bucket: bucket, key: "k")
        #expect(address.host == "s3.eu-west-1.amazonaws.com")
        #expect(address.path == "/\(bucket)/k")
    }

    // MARK: - Custom endpoints

    struct Precedence: Sendable, CustomTestStringConvertible {
        var config: String?
        var s3Variable: String?
        var variable: String?
        var authority: String
        var testDescription: String {
            "config=\(config ?? "-") AWS_ENDPOINT_URL_S3=\(s3Variable ?? "-") AWS_ENDPOINT_URL=\(variable ?? "-")"
        }
    }

    @Test(arguments: [
        Precedence(
            config: "http://config:1",
            s3Variable: "http://s3var:2",
            variable: "http://var:3",
            authority: "config:1"
        ),
        Precedence(config: "http://config:1", s3Variable: nil, variable: "http://var:3", authority: "config:1"),
        Precedence(config: nil, s3Variable: "http://s3var:2", variable: "http://var:3", authority: "s3var:2"),
        Precedence(config: nil, s3Variable: nil, variable: "http://var:3", authority: "var:3"),
        // A bad variable is never looked at when a higher-priority source is set.
        Precedence(config: "http://config:1", s3Variable: "not a url", variable: "ftp://x", authority: "config:1"),
    ])
    func configEndpointBeatsS3VariableWhichBeatsGenericVariable(_ precedence: Precedence) throws {
        var environment: [String: String] = [:]
        environment["AWS_ENDPOINT_URL_S3"] = precedence.s3Variable
        environment["AWS_ENDPOINT_URL"] = precedence.variable
        let endpoint = try Self.custom(precedence.config, environment: environment)
        #expect(endpoint.authority == precedence.authority)
        #expect(!endpoint.isAWS)
        #expect(endpoint.region == "eu-west-1")
    }

    @Test func customEndpointDefaultsToPathStyleAndKeepsPort() throws {
        let endpoint = try Self.custom("http://localhost:9000")
        #expect(endpoint.scheme == "http")
        #expect(endpoint.authority == "localhost:9000")
        #expect(endpoint.description == "http://localhost:9000")
        #expect(endpoint.forcePathStyle)
        let address = endpoint.address(bucket: "fleet-data", key: "logs/a.bag")
        #expect(address.host == "localhost:9000")
        #expect(address.path == "/fleet-data/logs/a.bag")
    }

    @Test func customEndpointWithoutPortHasBareHostAuthority() throws {
        let endpoint = try Self.custom("https://minio.example.com/")
        #expect(endpoint.scheme == "https")
        #expect(endpoint.authority == "minio.example.com")
    }

    @Test func customEndpointSchemeIsLowercased() throws {
        let endpoint = try Self.custom("HTTPS://minio.example.com:8443")
        #expect(endpoint.scheme == "https")
        #expect(endpoint.authority == "minio.example.com:8443")
    }

    @Test func customEndpointHonoursVirtualHostedWhenPathStyleIsOff() throws {
        let endpoint = try Self.custom("https://minio.example.com", pathStyle: false)
        #expect(!endpoint.forcePathStyle)
        let address = endpoint.address(bucket: "fleet-data", key: "k")
        #expect(address.host == "fleet-data.minio.example.com")
        #expect(address.path == "/k")
    }

    struct BadEndpoint: Sendable, CustomTestStringConvertible {
        var source: String
        var value: String
        var testDescription: String { "\(source)='\(value)'" }
    }

    @Test(
        arguments: ["s3.endpoint", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].flatMap { source in
            ["ftp://x", "not a url", "http://"].map { BadEndpoint(source: source, value: $0) }
        }
    )
    func badEndpointThrowsConfigErrorNamingItsSource(_ bad: BadEndpoint) throws {
        let config = bad.source == "s3.endpoint" ? bad.value : nil
        let environment = bad.source == "s3.endpoint" ? [:] : [bad.source: bad.value]
        let error = #expect(throws: ConfigError.self) {
            try Self.custom(config, environment: environment)
        }
        let thrown = try #require(error)
        // The source may be the key path or, for a variable, the origin; either way the text names it.
        #expect(thrown.keyPath == bad.source || thrown.origin == bad.source)
        #expect(thrown.description.contains(bad.source))
        #expect(thrown.description.contains("'\(bad.value)'"))
    }

    @Test(arguments: [
        ("http://127.0.0.1:8333/some/path", "must be scheme, host and port only"),
        ("http://127.0.0.1:8333/?x=1", "must be scheme, host and port only"),
        ("http://127.0.0.1:8333/#top", "must be scheme, host and port only"),
        ("http://127.0.0.1:70000", "port must be 1…65535, got 70000"),
        ("http://admin:hunter2@127.0.0.1:8333", "must not carry a user name or password"),
    ])
    func endpointWithMoreThanSchemeHostAndPortIsRefused(endpoint: String, expected: String) throws {
        let error = try #require(#expect(throws: ConfigError.self) { try Self.custom(endpoint, environment: [:]) })
        #expect(error.keyPath == "s3.endpoint")
        #expect(error.description.contains(expected), "\(error)")
        #expect(!error.description.contains("hunter2"))
    }

    @Test func endpointWithATrailingSlashIsAccepted() throws {
        #expect(try Self.custom("http://127.0.0.1:8333/", environment: [:]).description == "http://127.0.0.1:8333")
    }
}
