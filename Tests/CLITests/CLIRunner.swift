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

/// A started process whose output is being collected.
struct RunningCommand {
    let process: Process
    private let group: DispatchGroup
    private let stdoutBox: DataBox
    private let stderrBox: DataBox

    init(process: Process) {
        self.process = process
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        group = DispatchGroup()
        stdoutBox = DataBox()
        stderrBox = DataBox()
        // Both pipes are drained as the process runs, so a chatty process cannot fill one and stall.
        let (outHandle, errHandle, stdoutBox, stderrBox) = (
            out.fileHandleForReading, err.fileHandleForReading, stdoutBox, stderrBox
        )
        DispatchQueue.global().async(group: group) { stdoutBox.set(outHandle.readDataToEndOfFile()) }
        DispatchQueue.global().async(group: group) { stderrBox.set(errHandle.readDataToEndOfFile()) }
    }

    /// Waits for the process to end and returns what it printed.
    func wait() -> CLIResult {
        process.waitUntilExit()
        group.wait()
        return CLIResult(
            status: process.terminationStatus,
            stdout: String(decoding: stdoutBox.get(), as: UTF8.self),
            stderr: String(decoding: stderrBox.get(), as: UTF8.self)
        )
    }
}

enum CLI {
    /// The directory holding the built executables: the test bundle sits beside them.
    static let binaries: URL = {
        let beside = Bundle.main.executableURL!.deletingLastPathComponent()
        if FileManager.default.isExecutableFile(atPath: beside.appendingPathComponent("upload").path) { return beside }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug")
            .standardizedFileURL
    }()

    /// A clean environment that keeps only PATH and HOME, so the caller's DATABASE_URL or FLEET_* never leak in.
    static func environment(_ extra: [String: String]) -> [String: String] {
        var env = ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": NSTemporaryDirectory()]
        env.merge(extra) { $1 }
        return env
    }

    /// Starts `command` (`upload`, `master`); `asUser` runs it through `runuser` as that user (tests run as root);
    /// `directory` is its working directory (default: the test's).
    static func start(
        _ command: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        asUser user: String? = nil,
        directory: URL? = nil
    ) throws -> RunningCommand {
        let process = Process()
        let executable = binaries.appendingPathComponent(command).path
        if let user {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", user, "--", executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        process.environment = CLI.environment(environment)
        if let directory { process.currentDirectoryURL = directory }
        let running = RunningCommand(process: process)
        try process.run()
        return running
    }

    /// Runs `command` to the end.
    static func run(
        _ command: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        asUser user: String? = nil,
        directory: URL? = nil
    ) throws -> CLIResult {
        try start(command, arguments, environment: environment, asUser: user, directory: directory).wait()
    }

    /// Runs a script or tool by path with the caller's environment plus `environment`.
    ///
    /// posix_spawn and waitpid directly, output through files: a script that leaves a daemon running
    /// (`scripts/s3.sh start`) made Foundation's `Process` miss the script's own exit. The child gets none of
    /// this process's descriptors beyond the standard three: a daemon the script leaves running would otherwise
    /// keep, for its whole life, whatever another test had open at that moment — a file being written, which a
    /// later deletion then rightly refuses as in use.
    static func runTool(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> CLIResult
    {
        let scratch = NSTemporaryDirectory() + "fleet-tool-" + UUID().uuidString
        let (outPath, errPath) = (scratch + ".out", scratch + ".err")
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        let quoted = ([path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command = quoted.joined(separator: " ") + " </dev/null >'\(outPath)' 2>'\(errPath)'"
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
        let argv = ["/bin/sh", "-c", command]
        var pid: pid_t = 0
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        guard closeInheritedDescriptors(&actions) == 0 else { throw CocoaError(.executableLoad) }
        let status = withCStrings(argv) { cArgv in
            withCStrings(env) { cEnv in posix_spawn(&pid, "/bin/sh", &actions, nil, cArgv, cEnv) }
        }
        guard status == 0 else { throw CocoaError(.executableLoad) }
        var exit: Int32 = 0
        while waitpid(pid, &exit, 0) < 0 && errno == EINTR {}
        let read = { (file: String) in (try? String(contentsOfFile: file, encoding: .utf8)) ?? "" }
        return CLIResult(status: (exit >> 8) & 0xFF, stdout: read(outPath), stderr: read(errPath))
    }
}

/// Adds to `actions` the closing of every descriptor from 3 up in the child: glibc's
/// `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), which its headers declare only under
/// `_GNU_SOURCE` and so is looked up by name.
private func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) -> Int32 {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
    else { return ENOSYS }
    return unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, 3)
}

/// A NULL-terminated `char *[]` of `strings`, alive while `body` runs.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

final class DataBox: @unchecked Sendable {
    // Written once by the reader thread before the group is left, read after `group.wait()`: ordered by it.
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
