import Synchronization

/// Runs work one piece after another, in the order it was added, on a task that exists only
/// while work waits: an idle connection has no task at all. A connection's commands go
/// through one, so that they are answered in order.
final class SerialQueue: Sendable {
    typealias Work = @Sendable () async -> Void

    private struct State {
        var waiting: [Work] = []
        var running = false
    }

    private let state = Mutex(State())

    init() {}

    func add(_ work: @escaping Work) {
        let start = state.withLock { s in
            s.waiting.append(work)
            defer { s.running = true }
            return !s.running
        }
        if start { Task { await self.drain() } }
    }

    private func drain() async {
        while let work = state.withLock({ s -> Work? in
            if s.waiting.isEmpty {
                s.running = false
                return nil
            }
            return s.waiting.removeFirst()
        }) {
            await work()
        }
    }
}
