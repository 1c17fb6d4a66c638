/// Claimed files waiting for a worker, in claim order. Taken files are dropped in bulk, not one by one (which
/// would move every waiting file each time): when the buffer runs dry, or once at least `dropTakenAfter` of
/// them are half of it. Claims ahead of the workers keep it from running dry, so without the second rule it
/// would hold every file the run ever claimed.
struct ClaimBuffer<Element> {
    /// Taken files kept at most before they are dropped (fewer while they are less than half the buffer).
    static var dropTakenAfter: Int { 256 }

    private var items: [Element] = []
    private var head = 0

    /// Files no worker has taken yet.
    var waiting: Int { items.count - head }
    /// Files held, taken ones not dropped yet included: what the buffer keeps in memory.
    var held: Int { items.count }

    mutating func append(contentsOf claimed: [Element]) { items += claimed }

    /// The first waiting file, if any.
    mutating func take() -> Element? {
        guard head < items.count else { return nil }
        defer {
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= Self.dropTakenAfter, head * 2 >= items.count {
                items.removeSubrange(..<head)
                head = 0
            }
        }
        return items[head]
    }

    /// Empties the buffer and returns the files no worker took.
    mutating func drain() -> [Element] {
        defer {
            items.removeAll()
            head = 0
        }
        return Array(items[head...])
    }
}
