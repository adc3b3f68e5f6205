import Foundation
import Logging
import NIOCore
import Synchronization
import SwitchboardCore
import SwitchboardStore

/// One Switchboard node: where channels are published to and subscribed to, whatever the
/// transport. Data flows one way: publish → store → feed (`Delivery`, with its sequencers)
/// → hub → the subscribers' outboxes. The store, the presence manager and the node
/// registry are given to it: SQLite and node-local for one node, PostgreSQL and shared for
/// a cluster (SPEC section 7).
public final class Node: Sendable {
    public let store: any Store
    public let presence: any Presence
    public let registry: any NodeRegistry
    public let hub: Hub
    public let namespaces: Namespaces
    public let metrics: ServerMetrics
    let delivery: Delivery
    /// Largest message data, as JSON (`limits.message_bytes`, SPEC section 5), from any transport.
    let maxMessageBytes: Int
    private let ids = RecordIDGenerator()
    /// Messages this node committed (publishes and change events), since its start.
    private let published = Atomic<UInt64>(0)

    public init(
        store: any Store,
        presence: any Presence = LocalPresence(),
        registry: (any NodeRegistry)? = nil,
        hub: Hub = Hub(),
        namespaces: Namespaces,
        metrics: ServerMetrics = ServerMetrics(),
        maxMessageBytes: Int = .max,
        logger: Logger = Logger(label: "switchboard")
    ) {
        self.store = store
        self.presence = presence
        self.registry = registry ?? SingleNode(nodeID: NodeID.make())
        self.hub = hub
        self.namespaces = namespaces
        self.metrics = metrics
        self.maxMessageBytes = maxMessageBytes
        self.delivery = Delivery(hub: hub, metrics: metrics, logger: logger)
        delivery.attach(to: store)
    }

    public var nodeID: String { registry.nodeID }

    public func policy(forChannel channel: String) -> NamespacePolicy {
        namespaces.policy(forChannel: channel)
    }

    public func newRecordID() -> String { ids.next() }

    /// What `identity` may do here.
    public func access(_ identity: Identity) -> Access {
        Access(identity: identity, namespaces: namespaces)
    }

    // MARK: Publishing

    /// Publishes `data` on `channel`; the answer comes after the commit.
    /// A repeated idempotency key publishes nothing and answers the first position.
    public func publish(channel: String, data: JSONValue, idempotencyKey: String? = nil) async throws -> PublishResult {
        if let key = idempotencyKey, key.isEmpty || key.utf8.count > 200 {
            throw ProtocolError.badRequest("idempotency_key must be 1-200 bytes")
        }
        let json = data.serialized
        guard json.utf8.count <= maxMessageBytes else {
            throw ProtocolError(.tooLarge, "the message's data is \(json.utf8.count) bytes as JSON; at most \(maxMessageBytes) (limits.message_bytes)")
        }
        let result = try await metrics.timeStore {
            try await store.publish(
                channel: channel, data: json, idempotencyKey: idempotencyKey, history: policy(forChannel: channel).history
            )
        }
        if !result.duplicate { published.add(1, ordering: .relaxed) }
        return result
    }

    /// `{"epoch","messages","offset"}` after `since` (or the latest), plus `recovered` when
    /// `since` is given: false if messages after it are gone or it is from another epoch.
    public func historyJSON(channel: String, since: Position?, limit: Int) async throws -> String {
        let slice = try await metrics.timeStore {
            try await store.history(channel: channel, after: since?.offset, limit: limit, history: policy(forChannel: channel).history)
        }
        guard let since else { return ServerFrames.messagesObject(slice.messages, position: slice.position) }
        let sameEpoch = since.epoch == slice.position.epoch
        return ServerFrames.messagesObject(
            sameEpoch ? slice.messages : [],
            position: slice.position,
            extra: ["recovered": .bool(sameEpoch && slice.complete)]
        )
    }

    // MARK: Records

    public func writeRecord(
        collection: String,
        id: String,
        decide: @escaping @Sendable (Record?) throws -> RecordChange
    ) async throws -> RecordWriteResult {
        let channel = Names.collectionChannel(collection)
        let result = try await metrics.timeStore {
            try await store.writeRecord(collection: collection, id: id, history: policy(forChannel: channel).history, decide: decide)
        }
        published.add(1, ordering: .relaxed)
        return result
    }

    // MARK: Subscribing

    public struct Subscription: Sendable {
        public var position: Position
        public var recovered: Bool
        /// False when more messages arrived during catch-up than the hub holds: close 4100.
        public var live: Bool
    }

    /// Subscribes with catch-up: registers with the hub first (holding live messages), reads
    /// the position and any missed messages in one snapshot, calls `reply` and then sends the
    /// missed messages through `subscriber`, and releases the held live messages after them.
    /// No message is lost or sent twice at the boundary, whatever is published meanwhile,
    /// on whichever node. In presence namespaces, `member` is who the subscriber is;
    /// `wantsPresence` asks for join and leave pushes. `reply` (optional) is called with the
    /// position and whether `since` was recovered, before the missed messages go out.
    // Not inlined: the Swift 6.3 optimizer crashes (signal 11, splitting the coroutine of
    // `ClientSession.subscribe`) with this body inside its caller.
    @inline(never)
    public func subscribe(
        _ subscriber: any Subscriber,
        channel: String,
        since: Position?,
        member: Member? = nil,
        wantsPresence: Bool = false,
        reply: ((Position, Bool) -> Void)? = nil
    ) async throws -> Subscription {
        let policy = policy(forChannel: channel)
        let member = policy.presence ? member : nil
        guard hub.beginSubscribe(subscriber, channel: channel, member: member, wantsPresence: policy.presence && wantsPresence) else {
            throw ProtocolError(.conflict, "already subscribed to \"\(channel)\"")
        }
        delivery.watch(channel)
        let slice: HistorySlice
        do {
            slice = try await snapshot(channel: channel, since: since, history: policy.history)
        } catch {
            hub.unsubscribe(subscriber, channel: channel)
            delivery.unwatch(channel)
            throw error
        }
        let position = slice.position
        let recovered = since.map(slice.recovers) ?? false
        reply?(position, recovered)
        if recovered {
            // Paced (every 64 messages or 64 KiB), so that a long catch-up never trips the
            // slow-consumer limit: live messages wait in the hub meanwhile.
            var sent = (messages: 0, bytes: 0)
            for message in slice.messages {
                if sent.messages >= 64 || sent.bytes >= 65536 {
                    await subscriber.waitForRoom()
                    sent = (0, 0)
                }
                var frames = MessageFrames(message)
                subscriber.deliver(message, frames: &frames)
                frames.commit()
                sent.messages += 1
                sent.bytes += message.data.utf8.count
            }
        }
        let live = hub.goLive(subscriber, channel: channel, after: position.offset)
        if live, let member { presence.joined(member, channel: channel) }
        return Subscription(position: position, recovered: recovered, live: live)
    }

    /// The position and missed messages, read until live delivery on this node starts at or
    /// before them (another subscription may have started it from a newer snapshot; the
    /// store has what lies between, so a second read sees it).
    /// When delivery of the channel already runs here and the subscriber has missed nothing
    /// (no `since`, or `since` is where delivery stands), the snapshot is that position, with
    /// no read of the store: a reconnect storm of up-to-date clients costs no queries.
    private func snapshot(channel: String, since: Position?, history: HistoryPolicy) async throws -> HistorySlice {
        if let live = delivery.livePosition(channel), since == nil || since == live {
            return HistorySlice(messages: [], position: live, complete: true)
        }
        while true {
            let slice: HistorySlice
            if let since {
                slice = try await metrics.timeStore {
                    try await store.history(channel: channel, after: since.offset, limit: max(history.size, 1), history: history)
                }
            } else {
                let position = try await metrics.timeStore { try await store.position(channel: channel) }
                slice = HistorySlice(messages: [], position: position, complete: true)
            }
            if delivery.establish(channel, at: slice.position) <= slice.position.offset { return slice }
        }
    }

    public func unsubscribe(_ subscriber: any Subscriber, channel: String) {
        guard let removal = hub.unsubscribe(subscriber, channel: channel) else { return }
        if let member = removal.member { presence.left(member, channel: channel) }
        delivery.unwatch(channel)
    }

    /// Members of a presence channel on every node.
    public func members(channel: String) async throws -> [Member] {
        try await metrics.timeStore { try await presence.members(channel: channel, local: hub.members(channel: channel)) }
    }

    // MARK: Counts

    public struct Counters: Sendable {
        /// Messages this node committed.
        public var published: UInt64
        /// Messages this node handed to subscribers.
        public var delivered: UInt64
    }

    public var counters: Counters {
        Counters(published: published.load(ordering: .relaxed), delivered: hub.delivered)
    }

    /// This node's report, as of now.
    public func report() -> NodeReport {
        let counters = self.counters
        return NodeReport(
            node: nodeID, connections: metrics.connectionCounts, subscriptions: hub.subscriptionCount,
            published: counters.published, delivered: counters.delivered, channels: hub.channelCounts()
        )
    }

    /// Every live node's report, this node's as of now (the others' are up to a second old).
    public func clusterReports() async throws -> [NodeReport] {
        let own = report()
        let others = try await metrics.timeStore { try await registry.reports() }.filter { $0.node != own.node }
        return (others + [own]).sorted { $0.node < $1.node }
    }
}
