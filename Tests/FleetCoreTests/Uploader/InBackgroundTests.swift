import Testing

@testable import FleetCore

/// Work on a thread of its own hands its result, or its error, to the one caller that takes it.
struct InBackgroundTests {
    struct Refused: Error, Equatable {}

    @Test func theFirstCallerTakesTheValueAndLaterOnesAreRefused() throws {
        let work = InBackground { 42 }
        #expect(try work.value() == 42)
        #expect(throws: CancellationError.self) { try work.value() }
    }

    @Test func whatTheWorkThrewIsThrownToTheCaller() {
        let work = InBackground { () throws -> Int in throw Refused() }
        #expect(throws: Refused()) { try work.value() }
    }
}
