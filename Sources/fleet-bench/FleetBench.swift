import ArgumentParser
import FleetAWS
import FleetCLI
import FleetCore
import FleetSystem
import Foundation

/// Drives single operations of the core for `bench/run.py`, so speed and memory are measured on the real
/// code paths and in a process of their own.
@main
struct FleetBench: FleetCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-bench",
        abstract: "Benchmark driver for bench/run.py (not for production use).",
        subcommands: [Put.self, Compress.self]
    )
}

extension FleetBench {
    /// Uploads one file as the upload workers do (parallel multipart above the threshold) and prints a JSON line.
    struct Put: ParsableCommand {
        @OptionGroup var configOptions: ConfigOptions
        @Option(help: "The file to upload.") var file: String
        @Option(help: "The key to upload it to.") var key: String

        func run() throws {
            let logger = LoggingBootstrap.logger(label: "fleet.bench", level: .warning)
            let config = try configOptions.load()
            let context = try S3Context(config: config)
            let client = try context.client(logger: logger)
            let file = try LocalFile(path: file)
            let started = Date()
            let uploaded =
                try file.status().size >= config.resolved.upload.multipartThresholdBytes
                ? ParallelMultipart(
                    context: context,
                    partSize: config.resolved.upload.partSizeBytes,
                    concurrency: config.resolved.upload.partConcurrency,
                    timeouts: client.timeouts,
                    logger: logger
                ).upload(file, bucket: config.s3.bucket ?? "", key: key, client: client)
                : client.uploadFile(file, bucket: config.s3.bucket ?? "", key: key)
            let seconds = Date().timeIntervalSince(started)
            print(
                #"{"bytes": \#(uploaded.size), "seconds": \#(seconds), "parts": \#(uploaded.partCount), "sha256": "\#(uploaded.sha256)"}"#
            )
        }
    }

    /// Compresses one file as an upload of a `compress` source does (`CompressedCopy`: an unnamed temporary file,
    /// the original hashed on the way) and prints a JSON line: bytes read, bytes of the copy, seconds.
    struct Compress: ParsableCommand {
        @Option(help: "The file to compress.") var file: String
        @Option(help: "The zstd level.") var level = Zstd.defaultLevel

        func run() throws {
            let original = try LocalFile(path: file)
            let started = Date()
            let copy = try CompressedCopy(of: original, level: level)
            let seconds = Date().timeIntervalSince(started)
            print(#"{"bytes": \#(copy.original.size), "sent": \#(copy.size), "seconds": \#(seconds)}"#)
        }
    }
}
