import Foundation
import Testing

/// Runs one of the built executables and captures what a user would see.
struct CLIResult {
    var status: Int32
    var stdout: String
    var stderr: String
    /// The first line on stderr: the one-line reason every refusal must give.
    var reason: String { stderr.split(separator: "\n").first.map(String.init) ?? "" }
}

enum CLI {
    /// The directory holding the built executables: the test bundle sits beside them.
    static let binaries: URL = {
        let beside = Bundle.main.executableURL!.deletingLastPathComponent()
        if FileManager.default.isExecutableFile(atPath: beside.appendingPathComponent("upload").path) { return beside }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug")
            .standardizedFileURL
    }()

    /// Runs `command` (`upload`, `master`) with `arguments`; `environment` adds to a clean environment that
    /// keeps only PATH and HOME, so the caller's DATABASE_URL or FLEET_* never leak in. `asUser` runs it through
    /// `runuser` as that user (the tests run as root).
    static func run(
        _ command: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        asUser user: String? = nil
    ) throws -> CLIResult {
        let process = Process()
        let executable = binaries.appendingPathComponent(command).path
        if let user {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", user, "--", executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        var env = ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": NSTemporaryDirectory()]
        env.merge(environment) { $1 }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes before waiting, so a chatty process cannot fill a pipe and stall.
        let group = DispatchGroup()
        let errHandle = err.fileHandleForReading
        let stderrBox = DataBox()
        DispatchQueue.global().async(group: group) { stderrBox.set(errHandle.readDataToEndOfFile()) }
        let stdoutData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let stderrData = stderrBox.get()
        process.waitUntilExit()
        return CLIResult(
            status: process.terminationStatus,
            stdout: String(decoding: stdoutData, as: UTF8.self),
            stderr: String(decoding: stderrData, as: UTF8.self)
        )
    }
}

private final class DataBox: @unchecked Sendable {
    // Written once by the reader thread before `group.wait()` returns, read after: ordered by the group.
    private var data = Data()
    func set(_ value: Data) { data = value }
    func get() -> Data { data }
}

/// A scratch directory for one test.
struct Scratch {
    let url: URL
    init() throws {
        url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("fleet-cli-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}
