import Logging
import NIOCore
import Synchronization
import SwitchboardCore
import SwitchboardStore

/// The node's one feed: the store hands it every committed message it learns of, and it
/// hands them to the hub in offset order through a `ChannelSequencer` per channel that has
/// subscribers here. Gaps (a notification that has not come yet, one that never will) are
/// read from the store; what the store no longer has makes the channel's subscribers resume.
///
/// The hub is called while the feed's lock is held, so that two threads handing over
/// messages of one channel cannot reorder them on their way to the hub.
final class Delivery: StoreFeed {
    private struct Channel {
        var sequencer = ChannelSequencer()
        /// Subscriptions on this node that need the channel.
        var watchers = 0
    }

    private let hub: Hub
    private let metrics: ServerMetrics
    private let logger: Logger
    /// How long a gap may wait for its late notification before it is read from the store.
    private let fillGrace: Duration
    private let channels = Mutex<[String: Channel]>([:])
    /// Set once by `attach(to:)` before anything is published.
    private let storeBox = Mutex<(any Store)?>(nil)

    init(hub: Hub, metrics: ServerMetrics, logger: Logger, fillGrace: Duration = .milliseconds(5)) {
        self.hub = hub
        self.metrics = metrics
        self.logger = logger
        self.fillGrace = fillGrace
    }

    /// Registers with the store as its feed.
    func attach(to store: any Store) {
        storeBox.withLock { $0 = store }
        store.attach(feed: self)
    }

    // MARK: Subscriptions

    /// A subscription on this node needs `channel` (call before reading its snapshot).
    func watch(_ channel: String) {
        channels.withLock { $0[channel, default: Channel()].watchers += 1 }
    }

    func unwatch(_ channel: String) {
        channels.withLock { c in
            guard let watchers = c[channel]?.watchers else { return }
            if watchers <= 1 { c.removeValue(forKey: channel) } else { c[channel]!.watchers = watchers - 1 }
        }
    }

    /// A subscription's snapshot: live delivery starts after it unless it already runs.
    /// Returns the offset it runs from; a caller whose snapshot is older reads again.
    func establish(_ channel: String, at position: Position) -> Int64 {
        channels.withLock { c in
            guard c[channel] != nil else { return position.offset }
            let (after, actions) = c[channel]!.sequencer.establish(at: position)
            perform(actions, channel: channel)
            return after
        }
    }

    /// Where live delivery of a watched channel stands, once established: the position a
    /// new subscription can start from without reading the store. Every later message is
    /// above it and reaches the hub after the subscription began.
    func livePosition(_ channel: String) -> Position? {
        channels.withLock { $0[channel]?.sequencer.position }
    }

    // MARK: StoreFeed

    func committed(_ message: ChannelMessage) {
        channels.withLock { c in
            guard c[message.channel] != nil else { return }
            perform(c[message.channel]!.sequencer.receive(message), channel: message.channel)
        }
    }

    func reached(channel: String, epoch: String, offset: Int64) {
        channels.withLock { c in
            guard c[channel] != nil else { return }
            perform(c[channel]!.sequencer.reached(offset, epoch: epoch), channel: channel)
        }
    }

    func presenceChanged(_ change: PresenceChange) {
        hub.announce(change)
    }

    var watchedChannels: [String] {
        channels.withLock { Array($0.keys) }
    }

    // MARK: Actions (with the lock held)

    private func perform(_ actions: ChannelSequencer.Actions, channel: String) {
        for message in actions.deliver { hub.dispatch(message) }
        if let lost = actions.lost {
            metrics.lostMessages.increment(by: Int64(lost.count))
            logger.warning("messages gone from the store before delivery; subscribers resume", metadata: [
                "channel": "\(channel)", "offsets": "\(lost.lowerBound)-\(lost.upperBound)",
            ])
            hub.missed(channel: channel)
        }
        if let fill = actions.fill { scheduleFill(fill, channel: channel) }
    }

    /// Reads a gap from the store after the grace period, unless it closed meanwhile.
    private func scheduleFill(_ range: ClosedRange<Int64>, channel: String, attempt: Int = 0) {
        guard let store = storeBox.withLock({ $0 }) else { return }
        let wait = attempt == 0 ? fillGrace : .milliseconds(min(2000, 100 << min(attempt, 5)))
        Task {
            try? await Task.sleep(for: wait)
            guard let range = self.channels.withLock({ c -> ClosedRange<Int64>? in
                guard c[channel] != nil else { return nil }
                return c[channel]!.sequencer.pendingFill(range)
            }) else { return }
            self.metrics.gapFills.increment()
            do {
                let messages = try await store.messages(channel: channel, after: range.lowerBound - 1, through: range.upperBound)
                self.channels.withLock { c in
                    guard c[channel] != nil else { return }
                    self.perform(c[channel]!.sequencer.filled(messages, range: range), channel: channel)
                }
            } catch {
                self.logger.debug("gap fill failed; retrying", metadata: ["channel": "\(channel)", "error": "\(error)"])
                let retry = self.channels.withLock { c -> ClosedRange<Int64>? in
                    guard c[channel] != nil else { return nil }
                    return c[channel]!.sequencer.fillFailed().fill
                }
                if let retry { self.scheduleFill(retry, channel: channel, attempt: attempt + 1) }
            }
        }
    }
}
