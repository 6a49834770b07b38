/// Waits until `condition` holds, looking every `interval`; throws after `timeout`, so that a
/// test whose condition never comes (a batch that finished before the test looked) fails with
/// `what` instead of hanging the whole suite.
public func waitUntil(_ what: String, timeout: Duration = .seconds(30), interval: Duration = .milliseconds(2),
                      _ condition: () -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while !condition() {
        guard clock.now < deadline else { throw TestSupportError("waited \(timeout) for \(what)") }
        try await Task.sleep(for: interval)
    }
}
