import Logging
import PostgresNIO
import Synchronization
import SwitchboardCore
import SwitchboardStore

/// Cluster-wide presence (SPEC section 7): members in a table, joins and leaves announced to
/// the other nodes through notifications. This node's own members are always answered from
/// its hub, so a client sees itself at once.
public struct PostgresPresence: Presence {
    private let store: PostgresStore

    public init(store: PostgresStore) {
        self.store = store
    }

    public func joined(_ member: Member, channel: String) { store.presenceWriter.enqueue(.join(member, channel)) }

    public func left(_ member: Member, channel: String) { store.presenceWriter.enqueue(.leave(member, channel)) }

    public func members(channel: String, local: [Member]) async throws -> [Member] {
        let node = store.nodeID
        let others = try await store.run {
            try await PostgresStore.rows(
                try await self.store.client.query("SELECT member FROM presence WHERE channel = \(channel) AND node <> \(node)"),
                as: String.self
            )
        }
        let remote = others.compactMap { (try? JSONValue.parse($0)).flatMap(Member.init(json:)) }
        return (local + remote).sorted { $0.client < $1.client }
    }
}

/// Writes presence changes in order, one task for all, then tells the other nodes.
final class PresenceWriter: Sendable {
    enum Change {
        case join(Member, String)
        case leave(Member, String)
    }

    private let client: PostgresClient
    private let notifier: Notifier
    private let nodeID: String
    private let logger: Logger
    private let timeout: Duration
    private let pending = Mutex<(changes: [Change], waiter: CheckedContinuation<Void, Never>?)>(([], nil))

    init(client: PostgresClient, notifier: Notifier, nodeID: String, logger: Logger, timeout: Duration) {
        self.client = client
        self.notifier = notifier
        self.nodeID = nodeID
        self.logger = logger
        self.timeout = timeout
    }

    func enqueue(_ change: Change) {
        pending.withLock { p in
            p.changes.append(change)
            defer { p.waiter = nil }
            return p.waiter
        }?.resume()
    }

    /// Writes the changes in order, then tells the other nodes. A change the database does
    /// not take (it is away) is dropped: the members of a node are rewritten by nobody, but
    /// a node that lost the database for longer than `node_timeout_seconds` is swept anyway.
    func run() async {
        while !Task.isCancelled {
            let changes = await next()
            for change in changes {
                let node = nodeID
                let client = self.client
                do {
                    switch change {
                    case .join(let member, let channel):
                        let json = member.json.serialized
                        _ = try await PostgresErrors.guarding(timeout: timeout) {
                            try await client.query("""
                                INSERT INTO presence (channel, client, node, member) VALUES (\(channel), \(member.client), \(node), \(json))
                                ON CONFLICT (channel, client) DO UPDATE SET node = excluded.node, member = excluded.member
                                """)
                        }
                        notifier.send(Notification.line(for: PresenceChange(.join, channel: channel, member: member), node: node))
                    case .leave(let member, let channel):
                        _ = try await PostgresErrors.guarding(timeout: timeout) {
                            try await client.query("DELETE FROM presence WHERE channel = \(channel) AND client = \(member.client)")
                        }
                        notifier.send(Notification.line(for: PresenceChange(.leave, channel: channel, member: member), node: node))
                    }
                } catch {
                    logger.warning("presence change not recorded", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    private func next() async -> [Change] {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = pending.withLock { p -> Bool in
                    if !p.changes.isEmpty || Task.isCancelled { return true }
                    p.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
            return pending.withLock { p in
                defer { p.changes = [] }
                return p.changes
            }
        } onCancel: {
            pending.withLock { p in
                defer { p.waiter = nil }
                return p.waiter
            }?.resume()
        }
    }
}
