/// Bytes that requests hold, with a first-come queue of those waiting for room (a value: no lock,
/// no clock).
///
/// A request asks once and holds its bytes until it leaves. One that fits is granted at once,
/// unless others wait before it: then it queues behind them, so a large request is not passed
/// forever by smaller ones. Requests of at most ``smallBytes`` are the exception: they pass the
/// queue when they fit, so short interactive requests never wait behind a bulk one's results.
public struct MemoryPool: Sendable {
    public enum Grant: Sendable, Equatable {
        case granted
        case queued
        /// More than the whole capacity: it can never be granted.
        case tooLarge
    }

    /// Bytes requests may hold together; nil until known (everything queues meanwhile).
    public private(set) var capacity: Int?
    /// Requests of at most this many bytes pass the queue when they fit.
    public let smallBytes: Int
    /// Bytes granted and not yet released.
    public private(set) var heldBytes = 0
    private var holdings: [AdmissionID: Int] = [:]
    private var waiting: [(id: AdmissionID, bytes: Int)] = []

    public init(capacity: Int?, smallBytes: Int) {
        self.capacity = capacity
        self.smallBytes = smallBytes
    }

    /// Requests queued for room.
    public var waitingCount: Int { waiting.count }

    /// Bytes a request holds (0 when it holds none).
    public func holding(_ id: AdmissionID) -> Int { holdings[id] ?? 0 }

    /// Asks for `bytes` for request `id`, which holds nothing in this pool yet.
    public mutating func acquire(_ id: AdmissionID, bytes: Int) -> Grant {
        precondition(holdings[id] == nil && !waiting.contains { $0.id == id }, "one request asks a pool once")
        guard let capacity else {
            waiting.append((id, bytes))
            return .queued
        }
        if bytes > capacity { return .tooLarge }
        if heldBytes + bytes <= capacity && (waiting.isEmpty || bytes <= smallBytes) {
            hold(id, bytes)
            return .granted
        }
        waiting.append((id, bytes))
        return .queued
    }

    /// Request `id` leaves: what it holds is freed, or it stops waiting. Returns the waiting
    /// requests granted as a result, in queue order.
    public mutating func release(_ id: AdmissionID) -> [AdmissionID] {
        if let bytes = holdings.removeValue(forKey: id) { heldBytes -= bytes }
        waiting.removeAll { $0.id == id }
        return grantWaiting()
    }

    /// Request `id` now holds only `bytes` (less than before: e.g. the part of its results already
    /// sent). Returns the waiting requests granted as a result.
    public mutating func shrink(_ id: AdmissionID, to bytes: Int) -> [AdmissionID] {
        guard let held = holdings[id], bytes < held else { return [] }
        holdings[id] = max(0, bytes)
        heldBytes -= held - max(0, bytes)
        return grantWaiting()
    }

    /// Sets the capacity. Returns the waiting requests now granted, and those now known to be too
    /// large, with the bytes they asked for (they leave the queue).
    public mutating func setCapacity(_ capacity: Int) -> (granted: [AdmissionID], tooLarge: [(id: AdmissionID, bytes: Int)]) {
        self.capacity = capacity
        let tooLarge = waiting.filter { $0.bytes > capacity }
        waiting.removeAll { $0.bytes > capacity }
        return (grantWaiting(), tooLarge)
    }

    /// Grants waiting requests in queue order while the first fits, then any small one that fits.
    private mutating func grantWaiting() -> [AdmissionID] {
        guard let capacity else { return [] }
        var granted: [AdmissionID] = []
        while let first = waiting.first, heldBytes + first.bytes <= capacity {
            waiting.removeFirst()
            hold(first.id, first.bytes)
            granted.append(first.id)
        }
        for waiter in waiting where waiter.bytes <= smallBytes && heldBytes + waiter.bytes <= capacity {
            hold(waiter.id, waiter.bytes)
            granted.append(waiter.id)
        }
        waiting.removeAll { holdings[$0.id] != nil }
        return granted
    }

    private mutating func hold(_ id: AdmissionID, _ bytes: Int) {
        holdings[id] = bytes
        heldBytes += bytes
    }
}

/// One request, as admission knows it.
public struct AdmissionID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
    public static func < (lhs: AdmissionID, rhs: AdmissionID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "request \(rawValue)" }
}
