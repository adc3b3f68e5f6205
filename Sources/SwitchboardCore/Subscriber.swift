import NIOCore

/// What receives a channel's events: a client session (whatever its transport), a poll.
///
/// The hub calls these in offset order while it holds its lock, so they must only enqueue:
/// never block and never call back into the hub.
public protocol Subscriber: AnyObject, Sendable {
    /// A channel message. `frames` holds its encodings, each built once on first use and
    /// shared by every subscriber of this delivery: take the one the transport speaks.
    func deliver(_ message: ChannelMessage, frames: inout MessageFrames)
    /// A member joined or left a channel this subscriber asked presence of.
    func presence(_ change: PresenceChange)
    /// Waits until the subscriber has room for more (catch-up sends history in paced batches).
    func waitForRoom() async
    /// Messages of `channel` were lost to this node (gone from the store before it could
    /// deliver them): the subscriber must resume from its last offset, not skip them.
    func missed(channel: String)
}

extension Subscriber {
    public func presence(_ change: PresenceChange) {}
    public func waitForRoom() async {}
}
