import Foundation

/// Gives memory the process has freed back to the system.
///
/// glibc keeps freed heap memory for reuse, in one arena per thread that allocated, so a long-running process
/// whose busy moments are far apart (the agent: an upload run with many worker threads, then hours of waiting)
/// keeps its peak resident size. `malloc_trim(0)` releases the free pages of every arena. It is looked up at run
/// time: C libraries without it (musl) simply keep their memory.
package enum FreedMemory {
    private typealias Trim = @convention(c) (Int) -> Int32

    private static let trim: Trim? = dlsym(nil, "malloc_trim").map {
        unsafeBitCast($0, to: Trim.self)
    }

    /// Calls glibc's `malloc_trim(0)`: the free pages of every arena go back to the system.
    package static func release() {
        _ = trim?(0)
    }
}
