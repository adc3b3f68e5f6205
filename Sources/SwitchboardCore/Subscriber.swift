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

/// A presence member: who is subscribed (SPEC section 3).
public struct Member: Sendable, Equatable {
    public var client: String
    public var user: String?
    public var info: JSONValue?

    public init(client: String, user: String?, info: JSONValue?) {
        self.client = client
        self.user = user
        self.info = info
    }

    public var json: JSONValue {
        ["client": .string(client), "user": user.map(JSONValue.string) ?? .null, "info": info ?? .null]
    }

}

/// A member joining or leaving a presence channel.
public struct PresenceChange: Sendable, Equatable {
    public enum Kind: String, Sendable { case join, leave }
    public var kind: Kind
    public var channel: String
    public var member: Member

    public init(_ kind: Kind, channel: String, member: Member) {
        self.kind = kind
        self.channel = channel
        self.member = member
    }

    /// `{"channel":…,"member":{…},"type":"join"|"leave"}`, as `/v1/ws` and SSE push it.
    public var json: String {
        JSONValue.object(["type": .string(kind.rawValue), "channel": .string(channel), "member": member.json]).serialized
    }
}
