import FleetAWS
import FleetSystem
import FleetTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@testable import FleetCore

/// `MetricsPublisher` and `CloudWatchClient` against a local receiver (`HTTPReceiver`) standing in for
/// CloudWatch.
struct CloudWatchPublisherTests {
    private static let environment = [
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    ]

    /// A client that sends to `receiver` and signs for `cn-north-1` with the test keys.
    private func client(_ receiver: HTTPReceiver) throws -> CloudWatchClient {
        let base = try #require(URLComponents(string: receiver.url))
        let chain = CredentialChain(profile: nil, environment: Self.environment, homeDirectory: "/nonexistent") {
            nil
        }
        return try CloudWatchClient(
            endpoint: "http://\(base.host ?? "127.0.0.1"):\(base.port ?? 80)",
            region: "cn-north-1",
            namespace: "TVM/Upload",
            vehicleID: "vehicle CN/001",
            credentials: CredentialProvider(chain: chain)
        )
    }

    /// The form fields of a request body, decoded, in order.
    private func fields(_ body: String) -> [(String, String)] {
        body.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
    }

    private func value(_ name: String, in fields: [(String, String)]) -> String? {
        fields.first { $0.0 == name }?.1
    }

    @Test func recordedMetricsReachTheEndpointAsOneSignedPutMetricData() throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let publisher = MetricsPublisher(client: try client(receiver), flushInterval: 3600, logger: quietLogger)
        defer { publisher.shutdown(timeout: 1) }

        publisher.record(uploadedBytes: 5_000_000, files: 12, failures: 2)
        publisher.record(diskUsagePercent: 42.25)
        publisher.flush()

        let requests = try receiver.requests()
        try #require(requests.count == 1)
        let request = requests[0]
        #expect(request.method == "POST")
        #expect(request.path == "/")
        #expect(request.header("Content-Type") == "application/x-www-form-urlencoded; charset=utf-8")
        #expect(request.header("X-Amz-Date")?.count == 16)
        let authorization = try #require(request.header("Authorization"))
        #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"))
        #expect(
            authorization.contains("/cn-north-1/monitoring/aws4_request, SignedHeaders=content-type;host;x-amz-date,")
        )

        let form = fields(request.body)
        #expect(value("Action", in: form) == "PutMetricData")
        #expect(value("Version", in: form) == "2010-08-01")
        #expect(value("Namespace", in: form) == "TVM/Upload")
        let expected: [(String, String, String)] = [
            ("BytesUploaded", "5000000", "Bytes"), ("FileCount", "12", "Count"), ("FailureCount", "2", "Count"),
            ("DiskUsagePercent", "42.25", "Percent"),
        ]
        for (index, (name, number, unit)) in expected.enumerated() {
            let member = "MetricData.member.\(index + 1)"
            #expect(value("\(member).MetricName", in: form) == name)
            #expect(value("\(member).Value", in: form) == number)
            #expect(value("\(member).Unit", in: form) == unit)
            #expect(value("\(member).Dimensions.member.1.Name", in: form) == "VehicleId")
            #expect(value("\(member).Dimensions.member.1.Value", in: form) == "vehicle CN/001")
            #expect(value("\(member).Timestamp", in: form)?.hasSuffix("Z") == true)
        }
        #expect(value("MetricData.member.5.MetricName", in: form) == nil)
        #expect(request.body.contains("vehicle%20CN%2F001"), "RFC 3986 form encoding, spaces as %20")

        let statistics = publisher.statistics
        #expect(statistics.recorded == 4)
        #expect(statistics.sent == 4)
        #expect(statistics.pending == 0)
        #expect(statistics.failures == 0)
    }

    @Test func twentyWaitingDataAreSentWithoutWaitingForTheInterval() throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let publisher = MetricsPublisher(client: try client(receiver), flushInterval: 3600, logger: quietLogger)
        defer { publisher.shutdown(timeout: 1) }

        for run in 1...6 { publisher.record(uploadedBytes: Int64(run), files: run, failures: 0) }  // 18 data
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try receiver.requests().isEmpty)
        publisher.record(uploadedBytes: 7, files: 7, failures: 0)  // 21
        let deadline = Date().addingTimeInterval(10)
        while try receiver.requests().isEmpty, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let requests = try receiver.requests()
        try #require(requests.count == 1)
        #expect(fields(requests[0].body).filter { $0.0.hasSuffix(".MetricName") }.count == 21)
    }

    @Test func theIntervalFlushesWhatIsWaiting() throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let publisher = MetricsPublisher(client: try client(receiver), flushInterval: 0.2, logger: quietLogger)
        defer { publisher.shutdown(timeout: 1) }

        publisher.record(diskUsagePercent: 50)
        // The receiver sees the request before the publisher has read the answer and counted it.
        let deadline = Date().addingTimeInterval(10)
        while publisher.statistics.sent == 0, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(try receiver.requests().count == 1)
        #expect(publisher.statistics.sent == 1)
    }

    @Test func aServerErrorIsLoggedAndCountedWithoutThrowingAndTheNextFlushDelivers() throws {
        let receiver = try HTTPReceiver(
            statuses: [500, 200],
            body:
                "<ErrorResponse><Error><Code>InternalFailure</Code><Message>try later</Message></Error></ErrorResponse>"
        )
        defer { receiver.stop() }
        let capture = LogCapture()
        let publisher = MetricsPublisher(client: try client(receiver), flushInterval: 3600, logger: capture.logger)
        defer { publisher.shutdown(timeout: 1) }

        publisher.record(uploadedBytes: 100, files: 1, failures: 0)
        publisher.flush()
        var statistics = publisher.statistics
        #expect(statistics.failures == 1)
        #expect(statistics.lastFailure == .server)
        #expect(statistics.sent == 0)
        #expect(statistics.pending == 3, "kept for the next flush")
        let warnings = capture.entries.filter { $0.level == .warning }
        #expect(warnings.count == 1)
        #expect(warnings.first?.text.contains("InternalFailure") == true)
        #expect(warnings.first?.text.contains("try later") == true)
        #expect(warnings.first?.text.contains("wJalr") == false)

        publisher.record(diskUsagePercent: 91)
        publisher.flush()
        statistics = publisher.statistics
        #expect(statistics.failures == 1)
        #expect(statistics.lastFailure == nil)
        #expect(statistics.sent == 4)
        #expect(statistics.pending == 0)
        #expect(capture.entries.contains { $0.level == .notice && $0.text.contains("delivered again") })

        let requests = try receiver.requests()
        try #require(requests.count == 2)
        let first = fields(requests[0].body).filter { $0.0.hasSuffix(".MetricName") }.map(\.1)
        let second = fields(requests[1].body).filter { $0.0.hasSuffix(".MetricName") }.map(\.1)
        #expect(first == ["BytesUploaded", "FileCount", "FailureCount"])
        #expect(second == first + ["DiskUsagePercent"], "the failed data go first, then what came after")
    }

    @Test func warningsAboutRepeatedFailuresAreRateLimited() throws {
        let receiver = try HTTPReceiver(statuses: [503])
        defer { receiver.stop() }
        let capture = LogCapture()
        let publisher = MetricsPublisher(client: try client(receiver), flushInterval: 3600, logger: capture.logger)
        defer { publisher.shutdown(timeout: 1) }

        for _ in 1...5 {
            publisher.record(diskUsagePercent: 10)
            publisher.flush()
        }
        #expect(publisher.statistics.failures == 5)
        #expect(publisher.statistics.pending == 5)
        #expect(capture.entries.filter { $0.level == .warning }.count == 1)
        #expect(capture.entries.filter { $0.level == .debug && $0.text.contains("not sent") }.count == 4)
    }

    @Test func aFullBufferDropsTheOldestAndCountsThem() throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let publisher = MetricsPublisher(
            client: try client(receiver),
            flushInterval: 3600,
            flushThreshold: 1000,
            capacity: 5,
            logger: quietLogger
        )
        defer { publisher.shutdown(timeout: 1) }

        for percent in 1...8 { publisher.record(diskUsagePercent: Double(percent)) }
        #expect(publisher.statistics.dropped == 3)
        #expect(publisher.statistics.pending == 5)
        publisher.flush()
        let requests = try receiver.requests()
        try #require(requests.count == 1)
        let values = fields(requests[0].body).filter { $0.0.hasSuffix(".Value") && !$0.0.contains("Dimensions") }
        #expect(values.map(\.1) == ["4", "5", "6", "7", "8"])
    }

    @Test func shutdownSendsWhatIsLeftAndIgnoresLaterRecords() throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let publisher = MetricsPublisher(client: try client(receiver), flushInterval: 3600, logger: quietLogger)

        publisher.record(diskUsagePercent: 33)
        publisher.shutdown(timeout: 5)
        publisher.record(diskUsagePercent: 34)
        #expect(try receiver.requests().count == 1)
        #expect(publisher.statistics.sent == 1)
        #expect(publisher.statistics.pending == 0)
    }
}
