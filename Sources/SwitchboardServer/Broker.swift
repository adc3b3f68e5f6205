import Foundation
import NIOCore
import SwitchboardCore
import SwitchboardStore

/// The one place where channels are published to and subscribed to, whatever the transport:
/// it joins the store (offsets, history) with the hub (live fan-out) under the namespace policies.
public final class Broker: Sendable {
    public let store: any Store
    public let hub: Hub
    public let namespaces: Namespaces
    public let metrics: ServerMetrics
    private let ids = RecordIDGenerator()

    public init(store: any Store, hub: Hub, namespaces: Namespaces, metrics: ServerMetrics = ServerMetrics()) {
        self.store = store
        self.hub = hub
        self.namespaces = namespaces
        self.metrics = metrics
    }

    public func policy(forChannel channel: String) -> NamespacePolicy {
        namespaces.policy(forChannel: channel)
    }

    public func newRecordID() -> String { ids.next() }

    // MARK: Publishing

    /// Publishes `data` on `channel`; the answer comes after the commit, fan-out in commit order.
    /// A repeated idempotency key publishes nothing and answers the first position.
    public func publish(channel: String, data: JSONValue, idempotencyKey: String? = nil) async throws -> PublishResult {
        if let key = idempotencyKey, key.isEmpty || key.utf8.count > 200 {
            throw ProtocolError.badRequest("idempotency_key must be 1-200 bytes")
        }
        let hub = self.hub
        return try await metrics.timeStore {
            try await store.publish(
                channel: channel,
                data: data.serialized,
                idempotencyKey: idempotencyKey,
                history: policy(forChannel: channel).history,
                onCommit: { hub.dispatch($0) }
            )
        }
    }

    /// Channels that only the server itself publishes on.
    public static func isReserved(channel: String) -> Bool {
        let ns = Names.namespace(of: channel)
        return ns == Names.collectionNamespace || ns == Names.systemNamespace
    }

    /// `{"epoch","messages","offset"}` after `since` (or the latest), plus `recovered` when
    /// `since` is given: false if messages after it are gone or it is from another epoch.
    public func historyJSON(channel: String, since: Position?, limit: Int) async throws -> String {
        let slice = try await store.history(
            channel: channel, after: since?.offset, limit: limit, history: policy(forChannel: channel).history
        )
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
        let hub = self.hub
        let channel = Names.collectionChannel(collection)
        return try await metrics.timeStore {
            try await store.writeRecord(
                collection: collection,
                id: id,
                history: policy(forChannel: channel).history,
                decide: decide,
                onCommit: { hub.dispatch($0) }
            )
        }
    }

    // MARK: Subscribing

    public struct Subscription: Sendable {
        public var position: Position
        public var recovered: Bool
        /// False when more messages arrived during catch-up than the hub holds: close 4100.
        public var live: Bool
    }

    /// Subscribes with catch-up: registers with the hub first (holding live messages), reads
    /// the position and any missed messages in one snapshot, sends `reply` and then the missed
    /// messages through `subscriber`, and releases the held live messages after them.
    /// No message is lost or sent twice at the boundary, whatever is published meanwhile.
    /// In presence namespaces, `member` is who the subscriber is; `wantsPresence` asks for
    /// join and leave pushes. `reply` (optional) is sent before the missed messages.
    public func subscribe(
        _ subscriber: any Subscriber,
        channel: String,
        since: Position?,
        member: Member? = nil,
        wantsPresence: Bool = false,
        reply: ((Position, Bool) -> ByteBuffer)? = nil
    ) async throws -> Subscription {
        let presence = policy(forChannel: channel).presence
        guard hub.beginSubscribe(subscriber, channel: channel, member: presence ? member : nil, wantsPresence: presence && wantsPresence) else {
            throw ProtocolError(.conflict, "already subscribed to \"\(channel)\"")
        }
        let slice: HistorySlice
        do {
            let history = policy(forChannel: channel).history
            if let since {
                slice = try await metrics.timeStore {
                    try await store.history(channel: channel, after: since.offset, limit: max(history.size, 1), history: history)
                }
            } else {
                let position = try await metrics.timeStore { try await store.position(channel: channel) }
                slice = HistorySlice(messages: [], position: position, complete: true)
            }
        } catch {
            hub.unsubscribe(subscriber, channel: channel)
            throw error
        }
        let position = slice.position
        var recovered = false
        if let since, since.epoch == position.epoch, slice.complete,
           since.offset == position.offset || slice.messages.last?.offset == position.offset
        {
            recovered = true
        }
        if let reply { subscriber.send(reply(position, recovered)) }
        if recovered {
            // Paced, so that a long catch-up never trips the slow-consumer limit: live
            // messages wait in the hub meanwhile.
            for (i, message) in slice.messages.enumerated() {
                if i % 64 == 63 { await subscriber.waitForRoom() }
                subscriber.deliver(message, frame: message.frame)
            }
        }
        let live = hub.goLive(subscriber, channel: channel, after: position.offset)
        return Subscription(position: position, recovered: recovered, live: live)
    }

    public func unsubscribe(_ subscriber: any Subscriber, channel: String) {
        hub.unsubscribe(subscriber, channel: channel)
    }
}
