import Foundation

/// Gives memory the process has freed back to the system.
///
/// glibc keeps freed heap memory for reuse, in one arena per thread that allocated, so a long-running process
/// whose busy moments are far apart (the agent: an upload run with many worker threads, then hours of waiting)
/// keeps its peak resident size. `malloc_trim(0)` releases the free pages of every arena. It is looked up at run
/// time: C libraries without it (musl) simply keep their memory.
package enum FreedMemory {
    private typealias Trim = @convention(c) (Int) -> Int32
    private typealias Option = @convention(c) (Int32, Int32) -> Int32

    private static let trim: Trim? = dlsym(nil, "malloc_trim").map {
        unsafeBitCast($0, to: Trim.self)
    }
    private static let option: Option? = dlsym(nil, "mallopt").map {
        unsafeBitCast($0, to: Option.self)
    }

    /// Calls glibc's `malloc_trim(0)`: the free pages of every arena go back to the system.
    package static func release() {
        _ = trim?(0)
    }

    /// Caps the arenas glibc creates for threads (`mallopt(M_ARENA_MAX, count)`), unless `MALLOC_ARENA_MAX` in
    /// the environment already says how many. By default glibc allows eight per core: each upload thread may get
    /// its own, and memory freed in one arena cannot serve another, so after a large backlog a process keeps
    /// tens of MiB it no longer uses. Call it before any thread starts: a thread keeps the arena it got.
    package static func limitArenas(to count: Int32, environment: [String: String]) {
        guard environment["MALLOC_ARENA_MAX"] == nil else { return }
        _ = option?(-8, count)  // M_ARENA_MAX
    }
}
