import Foundation

/// Processes on this machine, by id: whether one is still the process that claimed work.
package enum LocalProcess {
    /// Whether a process with this id exists (`kill(pid, 0)`; EPERM means it exists but is not ours).
    package static func exists(_ pid: Int32) -> Bool { pid > 0 && (kill(pid, 0) == 0 || errno == EPERM) }

    /// Whether the process with this id is the one that was running at `since`: it exists and started no later.
    /// After a reboot (or a long time) the id may belong to another process, started after the claim.
    package static func isAlive(_ pid: Int32, since: Timestamp) -> Bool {
        guard exists(pid) else { return false }
        guard let started = startTime(of: pid) else { return true }
        return started.microseconds <= since.microseconds + 1_000_000
    }

    /// When a process started: `/proc/PID/stat` field 22 (clock ticks after boot) plus `btime` of `/proc/stat`.
    package static func startTime(of pid: Int32) -> Timestamp? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name (which may hold spaces) start with field 3, the state.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]),
            let system = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let boot = Double(line.dropFirst(6))
        else { return nil }
        let hertz = Double(sysconf(Int32(_SC_CLK_TCK)))
        return Timestamp(microseconds: Int64((boot + ticks / hertz) * 1_000_000))
    }
}
