/// The file versions an upload run has handled, each kept as a 128-bit fingerprint rather than the path itself.
///
/// The agent must not queue a handled version again, but keeping every path, size and mtime would make its memory
/// grow with the files on disk (about 1 KiB each). A fingerprint is 16 bytes; the fingerprints a full scan found sit
/// in one sorted array (binary search, no per-entry allocation), and those handled since in a small set until the
/// next scan folds them in. Two different versions share a fingerprint with a probability of about n²/2¹²⁹ — for a
/// million files, 10⁻²⁷: never, in practice.
struct HandledVersions {
    struct Fingerprint: Hashable, Comparable {
        var high: UInt64
        var low: UInt64

        /// Two SipHash digests with different leading words: independent 64-bit halves. The seed is the process's own,
        /// which is enough for fingerprints that live in memory only.
        init(_ file: SourceFile, _ version: FileVersion) {
            high = UInt64(bitPattern: Int64(Self.digest(0x6869_6768, file, version)))
            low = UInt64(bitPattern: Int64(Self.digest(0x6C6F_7720, file, version)))
        }

        private static func digest(_ salt: UInt64, _ file: SourceFile, _ version: FileVersion) -> Int {
            var hasher = Hasher()
            hasher.combine(salt)
            hasher.combine(file.source)
            hasher.combine(file.relativePath.count)
            file.relativePath.withUnsafeBytes { hasher.combine(bytes: $0) }
            hasher.combine(version.size)
            hasher.combine(version.mtime.microseconds)
            return hasher.finalize()
        }

        static func < (lhs: Self, rhs: Self) -> Bool {
            (lhs.high, lhs.low) < (rhs.high, rhs.low)
        }
    }

    private var sorted: [Fingerprint]
    private var recent: Set<Fingerprint> = []

    init(_ fingerprints: [Fingerprint] = []) {
        sorted = fingerprints.sorted()
    }

    var count: Int { sorted.count + recent.count }

    func contains(_ file: SourceFile, _ version: FileVersion) -> Bool {
        contains(Fingerprint(file, version))
    }

    func contains(_ fingerprint: Fingerprint) -> Bool {
        if recent.contains(fingerprint) { return true }
        var low = 0
        var high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle] < fingerprint {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low < sorted.count && sorted[low] == fingerprint
    }

    mutating func insert(_ file: SourceFile, _ version: FileVersion) {
        let fingerprint = Fingerprint(file, version)
        guard !contains(fingerprint) else { return }
        recent.insert(fingerprint)
        // Between scans a busy agent may handle many files: fold them into the array once the set grows, so the
        // set's per-entry overhead stays small.
        if recent.count >= max(4_096, sorted.count / 8) {
            sorted = (sorted + recent).sorted()
            recent.removeAll()
        }
    }
}
