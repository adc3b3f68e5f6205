import Synchronization
import SwitchboardCore
import SwitchboardStore

/// Group commit for SQLite's one writer. A publish that finds no write under way starts
/// one, as a task: it runs after what the thread already has queued (on an event loop, the
/// rest of this turn's requests), so the publishes that arrive meanwhile, and while it
/// writes, go in the same transaction. The write runs on that thread with GRDB's
/// synchronous API (no hop to a writer thread). A quiet node pays one commit per publish;
/// a busy one one commit per batch, and a batch's messages reach the hub together, so that
/// each subscriber gets them in one socket write. The publishers are answered first, then
/// the messages go to the feed: on an event loop, the answers leave before the fan-out's
/// writes, and the next publishes come in while they are made. Batches are written one
/// after another, so the feed still sees each channel's messages in commit order.
final class GroupCommit: Sendable {
    struct Request: Sendable {
        var channel: String
        var data: String
        var key: String?
        var history: HistoryPolicy
    }

    private struct State {
        var waiting: [(Request, CheckedContinuation<PublishResult, any Error>)] = []
        var writing = false
    }

    static let maxBatch = 500

    private let state = Mutex(State())

    /// Publishes `request` through `writer` (always the same one).
    func publish(_ request: Request, to writer: some BatchWriter) async throws -> PublishResult {
        try await withCheckedThrowingContinuation { continuation in
            let lead = state.withLock { s -> Bool in
                s.waiting.append((request, continuation))
                guard !s.writing else { return false }
                s.writing = true
                return true
            }
            if lead { Task { self.writeWaiting(to: writer) } }
        }
    }

    /// Writes what waits, batch after batch, until nothing does.
    private func writeWaiting(to writer: some BatchWriter) {
        while true {
            let batch = state.withLock { s in
                let batch = Array(s.waiting.prefix(Self.maxBatch))
                s.waiting.removeFirst(batch.count)
                if batch.isEmpty { s.writing = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            let (results, committed) = writer.write(batch.map(\.0))
            for (entry, result) in zip(batch, results) { entry.1.resume(with: result) }
            writer.deliver(committed)
        }
    }
}

/// What writes batches of publishes.
protocol BatchWriter: AnyObject, Sendable {
    /// Writes a batch in one transaction: one result per publish, in order, and the
    /// messages committed, in commit order.
    func write(_ requests: [GroupCommit.Request]) -> (results: [Result<PublishResult, any Error>], committed: [ChannelMessage])
    /// Hands a batch's committed messages on, in commit order.
    func deliver(_ committed: [ChannelMessage])
}
