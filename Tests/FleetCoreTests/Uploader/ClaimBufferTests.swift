import Testing

@testable import FleetCore

/// The buffer of claimed files hands them out in claim order and does not keep the taken ones for the whole
/// run, even when claims ahead keep it from ever running dry.
struct ClaimBufferTests {
    @Test func filesComeOutInClaimOrderAndTheRestIsDrained() {
        var buffer = ClaimBuffer<Int>()
        buffer.append(contentsOf: [1, 2, 3])
        #expect(buffer.take() == 1)
        buffer.append(contentsOf: [4])
        #expect(buffer.take() == 2)
        #expect(buffer.waiting == 2)
        #expect(buffer.drain() == [3, 4])
        #expect(buffer.take() == nil)
        #expect(buffer.held == 0)
    }

    @Test func aBufferThatNeverRunsDryDropsWhatWasTaken() throws {
        var buffer = ClaimBuffer<Int>()
        var next = 0
        var taken: [Int] = []
        // A claim of 100 whenever fewer than 100 wait, as the claims ahead do: 10,000 files, never dry.
        while taken.count < 10_000 {
            if buffer.waiting < 100 {
                buffer.append(contentsOf: Array(next..<next + 100))
                next += 100
            }
            let file = buffer.take()
            taken.append(try #require(file))
            #expect(buffer.waiting > 0)
        }
        #expect(taken == Array(0..<10_000))
        #expect(buffer.held < ClaimBuffer<Int>.dropTakenAfter + 200, "held \(buffer.held)")
    }
}
