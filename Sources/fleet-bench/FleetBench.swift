import ArgumentParser
import FleetCLI
import FleetCore
import Foundation

/// Drives single operations of the core for `bench/run.py`, so speed and memory are measured on the real
/// code paths and in a process of their own.
@main
struct FleetBench: FleetCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-bench",
        abstract: "Benchmark driver for bench/run.py (not for production use).",
        subcommands: [Put.self]
    )
}

extension FleetBench {
    /// Uploads one file through the S3 client (multipart above the threshold) and prints a JSON line.
    struct Put: ParsableCommand {
        @OptionGroup var configOptions: ConfigOptions
        @Option(help: "The file to upload.") var file: String
        @Option(help: "The key to upload it to.") var key: String

        func run() throws {
            let logger = LoggingBootstrap.logger(label: "fleet.bench", level: .warning)
            let config = try configOptions.load()
            let client = try S3Context(config: config).client(logger: logger)
            let started = Date()
            let uploaded = try client.uploadFile(
                LocalFile(path: file),
                bucket: config.s3.bucket ?? "",
                key: key,
                multipartThreshold: config.multipartThresholdBytes,
                partSize: config.partSizeBytes
            )
            let seconds = Date().timeIntervalSince(started)
            print(
                #"{"bytes": \#(uploaded.size), "seconds": \#(seconds), "parts": \#(uploaded.partCount), "sha256": "\#(uploaded.sha256)"}"#
            )
        }
    }
}
