import SwitchboardCore

/// Where a store hands what it learns of committed data: the node's one feed (as a
/// Centrifuge node hands publications to its node). The store calls it from any thread;
/// it only records and schedules, never blocks.
public protocol StoreFeed: AnyObject, Sendable {
    /// A message committed on any node. It may come twice, late, or out of order.
    func committed(_ message: ChannelMessage)

    /// The channel has committed messages up to `offset`, which this call does not carry (a
    /// large message's notification, a poll, a catch-up after the listener reconnected).
    func reached(channel: String, epoch: String, offset: Int64)

    /// A member joined or left a presence channel on another node.
    func presenceChanged(_ change: PresenceChange)

    /// Channels that have subscribers on this node: the ones whose progress the store watches.
    var watchedChannels: [String] { get }
}
