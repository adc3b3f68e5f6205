import Logging
import Metrics
import PostgresNIO
import SwitchboardCore

/// LISTENs on a dedicated connection (not from the pool, and not through a
/// transaction-pooling PgBouncer, which cannot hold a LISTEN) and hands what it hears to the
/// feed. A reconnecting listener misses notifications for good, so every (re)LISTEN is
/// followed by a catch-up read of every watched channel's position.
struct Listener {
    let store: PostgresStore
    private let reconnects = Counter(label: "switchboard_pg_listener_reconnects_total")

    init(store: PostgresStore) {
        self.store = store
    }

    func run() async {
        var attempt = 0
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: try store.url.connectionConfiguration(node: store.nodeID),
                    id: 1,
                    logger: store.logger
                )
                do {
                    try await connection.listen(on: Notification.channel) { notifications in
                        attempt = 0
                        store.noteReachable(true)
                        Task { try? await store.catchUp() }
                        for try await notification in notifications { handle(notification.payload) }
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                if Task.isCancelled { return }
                store.noteReachable(false)
                store.logger.warning("database listener lost; reconnecting", metadata: ["error": "\(PostgresErrors.describe(error))"])
            }
            reconnects.increment()
            attempt += 1
            try? await Task.sleep(for: .milliseconds(min(2000, 100 * (1 << min(attempt, 5)))))
        }
    }

    private func handle(_ payload: String) {
        guard let feed = store.feed else { return }
        for notification in Notification.parse(payload) {
            switch notification {
            case .message(let message):
                feed.committed(message)
            case .reference(let channel, let epoch, let offset):
                feed.reached(channel: channel, epoch: epoch, offset: offset)
            case .presence(let change, let node):
                // This node announced its own changes when they happened.
                if node != store.nodeID { feed.presenceChanged(change) }
            }
        }
    }
}
