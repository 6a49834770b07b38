import Foundation
import Scheduling
import Synchronization
import TestSupport
import Testing

/// Admission: the memory pools and the policy as values, then the runner with real waiting.
@Suite struct AdmissionTests {
    func id(_ n: Int) -> AdmissionID { AdmissionID(n) }

    @Test func aPoolGrantsFirstComeFirstServedAndLetsSmallRequestsPass() {
        var pool = MemoryPool(capacity: 100, smallBytes: 5)
        let grant1 = pool.acquire(id(1), bytes: 60)
        #expect(grant1 == .granted)
        let grant2 = pool.acquire(id(2), bytes: 50)
        #expect(grant2 == .queued)
        let grant3 = pool.acquire(id(3), bytes: 30)
        #expect(grant3 == .queued, "fits, but would pass a larger request waiting before it")
        let grant4 = pool.acquire(id(4), bytes: 5)
        #expect(grant4 == .granted, "small requests pass when they fit")
        let grant5 = pool.acquire(id(5), bytes: 101)
        #expect(grant5 == .tooLarge)
        #expect(pool.heldBytes == 65)
        let granted6 = pool.release(id(1))
        #expect(granted6 == [id(2), id(3)], "granted in queue order")
        #expect(pool.heldBytes == 85)
        #expect(pool.waitingCount == 0)
        let granted7 = pool.release(id(9))
        #expect(granted7 == [], "releasing what is not held does nothing")
    }

    @Test func aClosedPoolQueuesEverythingUntilItsCapacityIsKnown() {
        var pool = MemoryPool(capacity: nil, smallBytes: 0)
        let grant8 = pool.acquire(id(1), bytes: 10)
        #expect(grant8 == .queued)
        let grant9 = pool.acquire(id(2), bytes: 500)
        #expect(grant9 == .queued)
        let grant10 = pool.acquire(id(3), bytes: 20)
        #expect(grant10 == .queued)
        let (granted, tooLarge) = pool.setCapacity(100)
        #expect(granted == [id(1), id(3)])
        #expect(tooLarge.map(\.id) == [id(2)] && tooLarge.map(\.bytes) == [500])
    }

    func policy(maxRequests: Int = 10, maxTokens: Int = 1000, body: Int = 100, results: Int = 100) -> AdmissionPolicy {
        var policy = AdmissionPolicy(limits: .init(maxRequests: maxRequests, maxTokens: maxTokens), smallBytes: 0)
        _ = policy.open(bodyBytes: body, resultBytes: results)
        return policy
    }

    @Test func requestsBeyondTheCapacityAreRefusedAtOnce() {
        var policy = policy(maxRequests: 2)
        let first = policy.enter(id(1), bodyBytes: 10)
        let second = policy.enter(id(2), bodyBytes: 95)
        let third = policy.enter(id(3), bodyBytes: 1)
        #expect(first == .granted)
        #expect(second == .queued, "waiting counts as inside")
        #expect(third == .refused(.queueFull(capacity: 2)))
        let granted = policy.leave(id(1))
        #expect(granted == [id(2)])
        let fourth = policy.enter(id(4), bodyBytes: 1)
        let fifth = policy.enter(id(5), bodyBytes: 1)
        #expect(fourth == .granted, "room for one again")
        #expect(fifth == .refused(.queueFull(capacity: 2)))
    }

    @Test func tokensAreBoundedAsWellAsRequests() {
        var policy = policy(maxTokens: 1000)
        for n in 1...3 { #expect(policy.enter(id(n), bodyBytes: 1) == .granted) }
        let reservation17 = policy.reserve(id(1), bytes: 10, tokens: 600)
        #expect(reservation17 == .granted)
        let reservation18 = policy.reserve(id(2), bytes: 10, tokens: 500)
        #expect(reservation18 == .refused(.tokenQueueFull(tokens: 500, queuedTokens: 600, limit: 1000)))
        let reservation19 = policy.reserve(id(3), bytes: 10, tokens: 1001)
        #expect(reservation19 == .refused(.tooManyTokens(tokens: 1001, limit: 1000)))
        #expect(policy.tokenCount == 600)
        _ = policy.leave(id(1))
        #expect(policy.tokenCount == 0)
    }

    @Test func aRequestThatCanNeverFitIsRefusedNamingTheSizes() {
        var policy = policy(results: 100)
        let entry20 = policy.enter(id(1), bodyBytes: 10)
        #expect(entry20 == .granted)
        let reservation21 = policy.reserve(id(1), bytes: 150, tokens: 5)
        #expect(reservation21 == .refused(.requestTooLarge(bytes: 150, limitBytes: 100, stage: .results)))
        let entry22 = policy.enter(id(2), bodyBytes: 101)
        #expect(entry22 == .refused(.requestTooLarge(bytes: 101, limitBytes: 100, stage: .body)))
        #expect(policy.tokenCount == 0)
    }

    /// Two requests holding their bodies, each wanting results room only one can have at a time:
    /// the second waits for the first, not for a room that never comes (the reason for two pools).
    @Test func requestsHoldingBodiesDoNotDeadlockWaitingForResultsRoom() {
        var policy = policy(body: 100, results: 100)
        let entry23 = policy.enter(id(1), bodyBytes: 50)
        #expect(entry23 == .granted)
        let entry24 = policy.enter(id(2), bodyBytes: 50)
        #expect(entry24 == .granted)
        let reservation25 = policy.reserve(id(1), bytes: 70, tokens: 1)
        #expect(reservation25 == .granted)
        let reservation26 = policy.reserve(id(2), bytes: 70, tokens: 1)
        #expect(reservation26 == .queued)
        let granted27 = policy.leave(id(1))
        #expect(granted27 == [id(2)])
        #expect(policy.results.heldBytes == 70)
        let granted28 = policy.leave(id(2))
        #expect(granted28 == [])
        let granted29 = policy.leave(id(2))
        #expect(granted29 == [], "leaving twice does nothing")
        #expect(policy.requestCount == 0 && policy.bodies.heldBytes == 0 && policy.results.heldBytes == 0)
    }

    @Test func requestsArrivingBeforeTheSizesAreKnownWaitThenAreAdmittedOrRefused() {
        var policy = AdmissionPolicy(limits: .init(maxRequests: 10, maxTokens: 100), smallBytes: 0)
        let entry30 = policy.enter(id(1), bodyBytes: 40)
        #expect(entry30 == .queued)
        let entry31 = policy.enter(id(2), bodyBytes: 400)
        #expect(entry31 == .queued)
        let (granted, refused) = policy.open(bodyBytes: 100, resultBytes: 100)
        #expect(granted == [id(1)])
        #expect(refused.map(\.0) == [id(2)] && refused.map(\.1) == [.requestTooLarge(bytes: 400, limitBytes: 100, stage: .body)])
        #expect(policy.requestCount == 1)
    }

    // MARK: - The runner

    /// A request waits for room and is admitted when the ticket before it is released; one that
    /// waits past its deadline is refused and holds nothing.
    @Test func ticketsWaitForRoomAndReleaseItWhenTheyGo() async throws {
        let admission = RequestAdmission(limits: .init(maxRequests: 10, maxTokens: 1000), smallBytes: 0)
        admission.open(bodyBytes: 100, resultBytes: 100)
        // Held in a box: a local would let the compiler release the ticket after its last use.
        let first = Mutex<AdmissionTicket?>(try await admission.enter(bodyBytes: 80, deadline: .now + .seconds(10)))
        await #expect(throws: SchedulingError.deadlineExceeded) {
            _ = try await admission.enter(bodyBytes: 80, deadline: .now + .milliseconds(30))
        }
        #expect(admission.status.requests == 1 && admission.status.waiting == 0, "the expired request left")
        let second = Task { try await admission.enter(bodyBytes: 80, deadline: .now + .seconds(10)) }
        try await waitUntil("a request waiting for admission", interval: .milliseconds(1)) { admission.status.waiting > 0 }
        first.withLock { $0 = nil }  // the first request is answered
        let ticket = try await second.value
        #expect(admission.status.bodyBytes == 80)
        try await ticket.reserve(bytes: 60, tokens: 10, deadline: .now + .seconds(10))
        #expect(admission.status.resultBytes == 60 && admission.status.tokens == 10)
        await #expect(throws: SchedulingError.requestTooLarge(bytes: 200, limitBytes: 100, stage: .results)) {
            let other = try await admission.enter(bodyBytes: 1, deadline: .now + .seconds(10))
            try await other.reserve(bytes: 200, tokens: 1, deadline: .now + .seconds(10))
        }
        #expect(admission.status.requests == 1, "the refused request left when its ticket went")
    }
}
