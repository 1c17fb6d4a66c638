import FleetSystem
import Testing

@testable import FleetLedger

/// When the opener of a session counts a process holding some of its files as gone.
struct ClaimHolderTests {
    private func holder(_ name: String, silentFor: Double?, claimedFor: Double = 0) -> ClaimHolder {
        ClaimHolder(
            holder: name,
            files: 3,
            silentFor: silentFor,
            claimedFor: claimedFor,
            since: Timestamp(microseconds: 5)
        )
    }

    @Test func aHolderOnThisMachineIsAliveWhileItsProcessIs() {
        let local = holder("rig-7.lab:4242", silentFor: 3600)
        var asked: (Int32, Timestamp)?
        #expect(
            local.isAlive(hostname: "rig-7.lab") {
                asked = ($0, $1)
                return true
            }
        )
        #expect(asked?.0 == 4242 && asked?.1 == Timestamp(microseconds: 5))
        #expect(!local.isAlive(hostname: "rig-7.lab") { _, _ in false })
    }

    @Test func aHolderElsewhereIsGoneAfterAMinuteWithoutHeartbeat() {
        #expect(holder("other:1", silentFor: 5).isAlive(hostname: "here") { _, _ in false })
        #expect(!holder("other:1", silentFor: 61).isAlive(hostname: "here") { _, _ in true })
    }

    @Test func aHolderThatNeverRegisteredGetsTenMinutes() {
        #expect(holder("other:1", silentFor: nil, claimedFor: 599).isAlive(hostname: "here") { _, _ in false })
        #expect(!holder("other:1", silentFor: nil, claimedFor: 601).isAlive(hostname: "here") { _, _ in true })
    }

    @Test func hostNamesMayHoldColons() {
        let odd = holder("fe80::1:77", silentFor: nil)
        #expect(odd.hostname == "fe80::1" && odd.pid == 77)
    }
}
