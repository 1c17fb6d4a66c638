/// The file versions an upload run has handled, each kept as a 128-bit fingerprint rather than the path itself.
///
/// The agent must not queue a handled version again, but keeping every path, size and mtime would make its memory
/// grow with the files on disk (about 1 KiB each). A fingerprint is 16 bytes; the fingerprints sit in one sorted
/// array (binary search, no per-entry allocation), and those handled since the last fold in a small set. A full
/// scan marks the fingerprints it finds in a bitmap (one bit each) and then drops the others in place, so a scan
/// never needs a second copy of the array. Two different versions share a fingerprint with a probability of about
/// n²/2¹²⁹ — for a million files, 10⁻²⁷: never, in practice.
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

    private var sorted: [Fingerprint] = []
    private var recent: Set<Fingerprint> = []
    /// During a scan: which entries of `sorted` it found.
    private var found: [UInt64]?
    /// During a scan: versions it found handled that were not known yet (the ledger stores them), folded in when
    /// it ends. An array, not the set: a start-up scan may add a million.
    private var addedByScan: [Fingerprint] = []

    var count: Int { sorted.count + recent.count + addedByScan.count }

    func contains(_ file: SourceFile, _ version: FileVersion) -> Bool {
        let fingerprint = Fingerprint(file, version)
        return recent.contains(fingerprint) || index(of: fingerprint) != nil
    }

    mutating func insert(_ file: SourceFile, _ version: FileVersion) {
        let fingerprint = Fingerprint(file, version)
        if found != nil {
            addedByScan.append(fingerprint)  // the scan reports each file once: no duplicate to look for
            return
        }
        guard !recent.contains(fingerprint), index(of: fingerprint) == nil else { return }
        recent.insert(fingerprint)
        // A busy agent may handle many files between scans: fold them into the array once the set grows, so the
        // set's per-entry overhead stays small.
        if recent.count >= max(4_096, sorted.count / 16) { fold() }
    }

    /// A full scan begins: what it does not report through `noteFound` goes when it ends.
    mutating func beginScan() {
        fold()
        found = [UInt64](repeating: 0, count: (sorted.count + 63) / 64)
    }

    /// The scan found this version; returns whether it is handled.
    mutating func noteFound(_ file: SourceFile, _ version: FileVersion) -> Bool {
        let fingerprint = Fingerprint(file, version)
        if recent.contains(fingerprint) { return true }
        guard let index = index(of: fingerprint) else { return false }
        found?[index / 64] |= 1 << UInt64(index % 64)
        return true
    }

    /// The scan ended: when complete, the fingerprints it did not find are dropped; the versions it added are kept
    /// either way.
    mutating func endScan(complete: Bool) {
        defer {
            found = nil
            merge(addedByScan.sorted())
            addedByScan = []
        }
        guard complete, let found else { return }
        var kept = 0
        for index in sorted.indices where found[index / 64] & (1 << UInt64(index % 64)) != 0 {
            sorted[kept] = sorted[index]
            kept += 1
        }
        sorted.removeLast(sorted.count - kept)
    }

    private func index(of fingerprint: Fingerprint) -> Int? {
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
        return low < sorted.count && sorted[low] == fingerprint ? low : nil
    }

    /// Moves the set into the sorted array.
    private mutating func fold() {
        guard !recent.isEmpty else { return }
        let incoming = recent.sorted()
        recent.removeAll()
        merge(incoming)
    }

    /// Merges sorted fingerprints into the sorted array from the back, so no second copy of the array is made.
    private mutating func merge(_ incoming: [Fingerprint]) {
        guard !incoming.isEmpty else { return }
        var write = sorted.count + incoming.count
        if sorted.capacity < write { sorted.reserveCapacity(write + write / 8) }
        var old = sorted.count - 1
        var new = incoming.count - 1
        sorted.append(contentsOf: incoming)  // room at the end; overwritten by the merge below
        while new >= 0 {
            write -= 1
            if old >= 0, incoming[new] < sorted[old] {
                sorted[write] = sorted[old]
                old -= 1
            } else {
                sorted[write] = incoming[new]
                new -= 1
            }
        }
    }
}
