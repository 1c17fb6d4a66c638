import Foundation

/// One value of one of the agent's CloudWatch metrics (namespace `TVM/Upload` by default), at one time.
package struct MetricDatum: Sendable, Equatable {
    package enum Name: String, Sendable, CaseIterable {
        /// Bytes uploaded by a run; CloudWatch sums them.
        case bytesUploaded = "BytesUploaded"
        /// Files uploaded by a run.
        case fileCount = "FileCount"
        /// Files that failed in a run.
        case failureCount = "FailureCount"
        /// The fullest source file system at a heartbeat, 0…100.
        case diskUsagePercent = "DiskUsagePercent"

        /// The CloudWatch unit the metric is sent with.
        package var unit: String {
            switch self {
            case .bytesUploaded: "Bytes"
            case .fileCount, .failureCount: "Count"
            case .diskUsagePercent: "Percent"
            }
        }
    }

    package var name: Name
    package var value: Double
    package var timestamp: Date

    package init(_ name: Name, _ value: Double, at timestamp: Date) {
        self.name = name
        self.value = value
        self.timestamp = timestamp
    }
}
