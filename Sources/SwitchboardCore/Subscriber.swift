import NIOCore

/// Something that receives a channel's frames: a WebSocket connection, an SSE stream, a poll.
///
/// The hub calls these in commit order while it holds its lock, so they must only enqueue:
/// never block and never call back into the hub.
public protocol Subscriber: AnyObject, Sendable {
    /// A frame that is not a channel message (a reply, a join or leave): its JSON.
    func send(_ frame: ByteBuffer)
    /// A channel message; `frame` is its push frame, encoded once for every subscriber.
    func deliver(_ message: ChannelMessage, frame: PushFrame)
    /// Waits until the subscriber has room for more (catch-up sends history in paced batches).
    func waitForRoom() async
    /// Messages of `channel` were lost to this node (gone from the store before it could
    /// deliver them): the subscriber must resume from its last offset, not skip them.
    func missed(channel: String)
}

extension Subscriber {
    public func deliver(_ message: ChannelMessage, frame: PushFrame) {
        send(frame.json)
    }

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

    /// `{"channel":…,"member":{…},"type":"join"|"leave"}`.
    func frame(_ type: String, channel: String) -> ByteBuffer {
        ByteBuffer(string: JSONValue.object(["type": .string(type), "channel": .string(channel), "member": json]).serialized)
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
}
