import NIOCore
import Synchronization

/// Routes committed channel messages to subscribers, in offset order, and keeps presence.
///
/// The node's sequencer calls `dispatch` in offset order per channel, so subscribers see
/// offsets in order. A subscription starts in catch-up mode: live messages are held back while the
/// subscriber's missed messages are read from history, and released by `goLive` without
/// the ones history already delivered, so nothing is lost or repeated at the boundary.
/// In presence namespaces each subscription is a member; subscribers that asked for
/// presence get `join` and `leave` pushes when others come and go.
public final class Hub: Sendable {
    private struct Subscription {
        let subscriber: any Subscriber
        /// The last offset this subscriber was given; anything at or below is skipped.
        var lastOffset: Int64
        /// Messages held while catching up; nil once live.
        var pending: [ChannelMessage]?
        /// Catch-up held more than `maxPending` messages: the subscriber must resume later.
        var overflowed = false
        /// This subscription as a presence member, in presence namespaces.
        let member: Member?
        /// Wants `join` and `leave` pushes.
        let wantsPresence: Bool
    }

    private struct State {
        var channels: [String: [ObjectIdentifier: Subscription]] = [:]
        var delivered: UInt64 = 0
    }

    /// Most messages held for one catching-up subscriber before it is treated as too slow.
    public let maxPending: Int
    private let state = Mutex(State())

    public init(maxPending: Int = 100_000) {
        self.maxPending = maxPending
    }

    /// Delivers a committed message to the channel's subscribers. Must be called in offset order per channel.
    public func dispatch(_ message: ChannelMessage) {
        state.withLock { s in
            // Taken out of the table so that it is uniquely referenced and mutated in place:
            // no copy of the subscriber table, or of a catching-up subscriber's held messages,
            // per message.
            guard var subscriptions = s.channels.removeValue(forKey: message.channel) else { return }
            defer { s.channels[message.channel] = subscriptions }
            var frames = MessageFrames(message)
            var delivered: UInt64 = 0
            var index = subscriptions.startIndex
            while index != subscriptions.endIndex {
                defer { subscriptions.formIndex(after: &index) }
                guard message.offset > subscriptions.values[index].lastOffset else { continue }
                if subscriptions.values[index].pending != nil {
                    if subscriptions.values[index].pending!.count < maxPending {
                        subscriptions.values[index].pending!.append(message)
                    } else {
                        subscriptions.values[index].overflowed = true
                    }
                    continue
                }
                subscriptions.values[index].subscriber.deliver(message, frames: &frames)
                subscriptions.values[index].lastOffset = message.offset
                delivered &+= 1
            }
            frames.commit()
            s.delivered &+= delivered
        }
    }

    /// Registers a subscription in catch-up mode. False if it already exists.
    public func beginSubscribe(_ subscriber: any Subscriber, channel: String, member: Member? = nil, wantsPresence: Bool = false) -> Bool {
        state.withLock { s in
            let key = ObjectIdentifier(subscriber)
            if s.channels[channel]?[key] != nil { return false }
            s.channels[channel, default: [:]][key] = Subscription(
                subscriber: subscriber, lastOffset: -1, pending: [], member: member, wantsPresence: wantsPresence
            )
            return true
        }
    }

    /// Ends catch-up: sends the held messages after `offset` (what catch-up delivered up to) and goes live.
    /// False if too many messages arrived during catch-up; the caller closes the connection (4100).
    public func goLive(_ subscriber: any Subscriber, channel: String, after offset: Int64) -> Bool {
        state.withLock { s in
            let key = ObjectIdentifier(subscriber)
            guard var sub = s.channels[channel]?[key] else { return true }
            guard !sub.overflowed else { return false }
            for message in sub.pending ?? [] where message.offset > offset {
                var frames = MessageFrames(message)
                subscriber.deliver(message, frames: &frames)
                frames.commit()
                s.delivered &+= 1
            }
            sub.lastOffset = max(offset, sub.pending?.last?.offset ?? offset)
            sub.pending = nil
            s.channels[channel]![key] = sub
            if let member = sub.member { announce(PresenceChange(.join, channel: channel, member: member), in: s.channels[channel]!, except: key) }
            return true
        }
    }

    public struct Removal: Sendable {
        /// The subscription's member when it was a live presence member: its leave was
        /// announced here and is the caller's to record for the cluster.
        public var member: Member?
    }

    /// Removes a subscription; nil when there was none.
    @discardableResult
    public func unsubscribe(_ subscriber: any Subscriber, channel: String) -> Removal? {
        state.withLock { s in
            let key = ObjectIdentifier(subscriber)
            guard let removed = s.channels[channel]?.removeValue(forKey: key) else { return nil }
            let member = removed.pending == nil ? removed.member : nil
            if s.channels[channel]!.isEmpty {
                s.channels.removeValue(forKey: channel)
            } else if let member {
                announce(PresenceChange(.leave, channel: channel, member: member), in: s.channels[channel]!, except: key)
            }
            return Removal(member: member)
        }
    }

    /// A join or leave on another node, announced to this node's subscribers that asked for presence.
    public func announce(_ change: PresenceChange) {
        state.withLock { s in
            guard let subscriptions = s.channels[change.channel] else { return }
            for sub in subscriptions.values where sub.wantsPresence && sub.pending == nil && sub.member?.client != change.member.client {
                sub.subscriber.presence(change)
            }
        }
    }

    /// Messages of `channel` were lost to this node: every subscriber of it must resume.
    public func missed(channel: String) {
        let subscribers = state.withLock { s in s.channels[channel]?.values.map(\.subscriber) ?? [] }
        for subscriber in subscribers { subscriber.missed(channel: channel) }
    }

    /// Sends a join or leave to the live subscribers that asked for presence.
    private func announce(_ change: PresenceChange, in subscriptions: [ObjectIdentifier: Subscription], except: ObjectIdentifier) {
        for (key, sub) in subscriptions where key != except && sub.wantsPresence && sub.pending == nil {
            sub.subscriber.presence(change)
        }
    }

    /// The channel's presence members, in client order.
    public func members(channel: String) -> [Member] {
        state.withLock { s in
            (s.channels[channel]?.values.compactMap(\.member) ?? []).sorted { $0.client < $1.client }
        }
    }

    /// Subscriptions on this node, all channels together.
    public var subscriptionCount: Int {
        state.withLock { s in s.channels.values.reduce(0) { $0 + $1.count } }
    }

    public func subscriberCount(channel: String) -> Int {
        state.withLock { $0.channels[channel]?.count ?? 0 }
    }

    /// Channels that have subscribers now, with their counts.
    public func channelCounts() -> [String: Int] {
        state.withLock { s in s.channels.mapValues(\.count) }
    }

    /// Messages handed to subscribers (one per subscriber), since the start.
    public var delivered: UInt64 {
        state.withLock { $0.delivered }
    }
}
