/// Waits until `condition` holds, looking every `interval`; throws after `timeout`, so that a
/// test whose condition never comes (a batch that finished before the test looked) fails with
/// `what` instead of hanging the whole suite.
///
/// The timeout guards against a hang; it is not a measure of speed. In the full suite on two
/// cores the CPU-bound tests hold the cooperative pool's two threads for seconds at a time: a
/// condition that comes within 15 ms alone (a scheduler's first batch) has taken 15-38 s there.
public func waitUntil(_ what: String, timeout: Duration = .seconds(120), interval: Duration = .milliseconds(2),
                      _ condition: () -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while !condition() {
        guard clock.now < deadline else { throw TestSupportError("waited \(timeout) for \(what)") }
        try await Task.sleep(for: interval)
    }
}
