import NIOCore
import Synchronization

/// Routes committed channel messages to subscribers, in offset order.
///
/// The store calls `dispatch` in commit order, so subscribers see offsets in order.
/// A subscription starts in catch-up mode: live messages are held back while the
/// subscriber's missed messages are read from history, and released by `goLive` without
/// the ones history already delivered, so nothing is lost or repeated at the boundary.
public final class Hub: Sendable {
    private struct Subscription {
        let subscriber: any Subscriber
        /// The last offset this subscriber was given; anything at or below is skipped.
        var lastOffset: Int64
        /// Messages held while catching up; nil once live.
        var pending: [ChannelMessage]?
        /// Catch-up held more than `maxPending` messages: the subscriber must resume later.
        var overflowed = false
    }

    private struct State {
        var channels: [String: [ObjectIdentifier: Subscription]] = [:]
        var published: UInt64 = 0
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
            s.published &+= 1
            guard var subscriptions = s.channels[message.channel] else { return }
            var frame: ByteBuffer?
            var delivered: UInt64 = 0
            for (key, var sub) in subscriptions {
                guard message.offset > sub.lastOffset else { continue }
                if sub.pending != nil {
                    if sub.pending!.count < maxPending { sub.pending!.append(message) } else { sub.overflowed = true }
                    subscriptions[key] = sub
                    continue
                }
                if frame == nil { frame = message.frame }
                sub.subscriber.send(frame!)
                sub.lastOffset = message.offset
                subscriptions[key] = sub
                delivered &+= 1
            }
            s.channels[message.channel] = subscriptions
            s.delivered &+= delivered
        }
    }

    /// Registers a subscription in catch-up mode. False if it already exists.
    public func beginSubscribe(_ subscriber: any Subscriber, channel: String) -> Bool {
        state.withLock { s in
            let key = ObjectIdentifier(subscriber)
            if s.channels[channel]?[key] != nil { return false }
            s.channels[channel, default: [:]][key] = Subscription(subscriber: subscriber, lastOffset: -1, pending: [])
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
                subscriber.send(message.frame)
                s.delivered &+= 1
            }
            sub.lastOffset = max(offset, sub.pending?.last?.offset ?? offset)
            sub.pending = nil
            s.channels[channel]![key] = sub
            return true
        }
    }

    @discardableResult
    public func unsubscribe(_ subscriber: any Subscriber, channel: String) -> Bool {
        state.withLock { s in
            let key = ObjectIdentifier(subscriber)
            guard s.channels[channel]?.removeValue(forKey: key) != nil else { return false }
            if s.channels[channel]!.isEmpty { s.channels.removeValue(forKey: channel) }
            return true
        }
    }

    public func subscriberCount(channel: String) -> Int {
        state.withLock { $0.channels[channel]?.count ?? 0 }
    }

    /// Channels that have subscribers now, with their counts.
    public func channelCounts() -> [String: Int] {
        state.withLock { s in s.channels.mapValues(\.count) }
    }

    public struct Counters: Sendable {
        public var published: UInt64
        public var delivered: UInt64
    }

    public var counters: Counters {
        state.withLock { Counters(published: $0.published, delivered: $0.delivered) }
    }
}
