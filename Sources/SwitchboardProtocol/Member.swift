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
