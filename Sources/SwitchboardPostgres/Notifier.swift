import Logging
import Metrics
import PostgresNIO
import Synchronization

/// Sends notifications after commits, batched: while one `pg_notify` is on its way, the
/// lines that come meanwhile gather and go out together in the next. A line that cannot be
/// sent (the database is away) is dropped: notifications are hints, and the other nodes'
/// pollers read what they missed.
final class Notifier: Sendable {
    private struct State {
        var lines: [String] = []
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let client: PostgresClient
    private let logger: Logger
    private let state = Mutex(State())
    private let sent = Counter(label: "switchboard_pg_notifications_total")
    private let failed = Counter(label: "switchboard_pg_notification_failures_total")
    private let queueUsage = Gauge(label: "switchboard_pg_notification_queue_usage")

    init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    func send(_ line: String) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.lines.append(line)
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    func run() async {
        var lastUsageCheck = ContinuousClock.now
        while !Task.isCancelled {
            let lines = await next()
            guard !lines.isEmpty else { continue }
            let payloads = Notification.payloads(lines)
            do {
                // One statement: one transaction, one round trip, however many payloads.
                try await client.query("SELECT pg_notify(\(Notification.channel), p) FROM unnest(\(payloads)) AS p")
                sent.increment(by: payloads.count)
            } catch {
                failed.increment(by: payloads.count)
                logger.debug("notify failed; the other nodes' pollers will catch up", metadata: ["error": "\(PostgresErrors.describe(error))"])
            }
            if ContinuousClock.now - lastUsageCheck > .seconds(10) {
                lastUsageCheck = .now
                if let usage = try? await PostgresStore.rows(try await client.query("SELECT pg_notification_queue_usage()"), as: Double.self).first {
                    queueUsage.record(usage)
                }
            }
        }
    }

    /// Waits for lines and takes them all; empty when cancelled.
    private func next() async -> [String] {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if !s.lines.isEmpty || Task.isCancelled { return true }
                    s.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
            return state.withLock { s in
                defer { s.lines = [] }
                return s.lines
            }
        } onCancel: {
            state.withLock { s in
                defer { s.waiter = nil }
                return s.waiter
            }?.resume()
        }
    }
}
