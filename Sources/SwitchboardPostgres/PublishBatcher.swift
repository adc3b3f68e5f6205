import Synchronization
import SwitchboardCore
import SwitchboardStore

/// Group commit for publishes: a publish goes out at once when a connection is free, and
/// the publishes that arrive while `maxInFlight` (2) batches are on their way wait and then go
/// together, in one call of `switchboard_publish_batch` (one statement, one commit). A quiet
/// node pays nothing; a busy one pays one round trip and one commit per batch instead of
/// per publish.
final class PublishBatcher: Sendable {
    struct Request: Sendable {
        var channel: String
        var data: String
        var key: String?
        var keep: Int32
        var ttlMillis: Int64
    }

    typealias Outcome = (epoch: String, offset: Int64, duplicate: Bool)
    typealias Run = @Sendable ([Request]) async throws -> [Outcome]

    private struct State {
        var waiting: [(Request, CheckedContinuation<Outcome, any Error>)] = []
        var inFlight = 0
    }

    private let state = Mutex(State())
    private let run: Run
    let maxInFlight: Int
    let maxBatch: Int

    init(maxInFlight: Int = 2, maxBatch: Int = 500, run: @escaping Run) {
        self.maxInFlight = maxInFlight
        self.maxBatch = maxBatch
        self.run = run
    }

    func publish(_ request: Request) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { s -> Bool in
                s.waiting.append((request, continuation))
                guard s.inFlight < maxInFlight else { return false }
                s.inFlight += 1
                return true
            }
            if start { Task { await self.drain() } }
        }
    }

    /// Sends batches until nothing waits.
    private func drain() async {
        while true {
            let batch = state.withLock { s -> [(Request, CheckedContinuation<Outcome, any Error>)] in
                let batch = Array(s.waiting.prefix(maxBatch))
                s.waiting.removeFirst(batch.count)
                if batch.isEmpty { s.inFlight -= 1 }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                let outcomes = try await run(batch.map(\.0))
                guard outcomes.count == batch.count else {
                    throw StoreError.corrupt("a batch of \(batch.count) publishes returned \(outcomes.count) results")
                }
                for (entry, outcome) in zip(batch, outcomes) { entry.1.resume(returning: outcome) }
            } catch {
                for entry in batch { entry.1.resume(throwing: error) }
            }
        }
    }
}
