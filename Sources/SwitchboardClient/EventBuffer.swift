import Synchronization

/// A subscription's events between the connection's reader and the `for await` loop that
/// consumes them, bounded: when it is full the reader waits, the socket stops being read,
/// and TCP tells the server this client is slow (it closes with 4100 past its queue
/// limit; the client then resumes from its last offset). Nothing is ever dropped here.
final class EventBuffer<Element: Sendable>: Sendable {
    private struct State {
        var events: [Element] = []
        var head = 0
        var consumer: CheckedContinuation<Element?, any Error>?
        var producers: [CheckedContinuation<Void, Never>] = []
        var finished: (any Error)??
    }

    private enum Next {
        case element(Element, [CheckedContinuation<Void, Never>])
        case end((any Error)?)
        case wait
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Adds an event; waits while the buffer is full (and not finished).
    func push(_ element: Element) async {
        let full = state.withLock { s -> Bool in
            guard s.finished == nil else { return false }
            if let consumer = s.consumer {
                s.consumer = nil
                consumer.resume(returning: element)
                return false
            }
            s.events.append(element)
            return s.events.count - s.head >= capacity
        }
        guard full else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let wait = state.withLock { s -> Bool in
                guard s.finished == nil, s.events.count - s.head >= capacity else { return false }
                s.producers.append(continuation)
                return true
            }
            if !wait { continuation.resume() }
        }
    }

    /// The next event; nil once finished without an error.
    func next() async throws -> Element? {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Element?, any Error>) in
            let next = state.withLock { s -> Next in
                if s.head < s.events.count {
                    let element = s.events[s.head]
                    s.head += 1
                    if s.head > 64 && s.head * 2 > s.events.count {
                        s.events.removeFirst(s.head)
                        s.head = 0
                    }
                    var released: [CheckedContinuation<Void, Never>] = []
                    if s.events.count - s.head < capacity { swap(&released, &s.producers) }
                    return .element(element, released)
                }
                if let finished = s.finished { return .end(finished) }
                s.consumer = continuation
                return .wait
            }
            switch next {
            case .element(let element, let released):
                released.forEach { $0.resume() }
                continuation.resume(returning: element)
            case .end(let error):
                if let error { continuation.resume(throwing: error) } else { continuation.resume(returning: nil) }
            case .wait:
                break
            }
        }
    }

    /// No more events: the consumer gets what is buffered, then the end (or `error`).
    func finish(throwing error: (any Error)? = nil) {
        let (consumer, producers) = state.withLock { s -> (CheckedContinuation<Element?, any Error>?, [CheckedContinuation<Void, Never>]) in
            guard s.finished == nil else { return (nil, []) }
            s.finished = .some(error)
            defer {
                s.consumer = nil
                s.producers = []
            }
            return (s.consumer, s.producers)
        }
        producers.forEach { $0.resume() }
        if let consumer {
            if let error { consumer.resume(throwing: error) } else { consumer.resume(returning: nil) }
        }
    }
}
