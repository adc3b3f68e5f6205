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

/// A member joining or leaving a presence channel. Its JSON is built once, when the change
/// is made, and shared by every subscriber told of it.
public struct PresenceChange: Sendable, Equatable {
    public enum Kind: String, Sendable { case join, leave }
    public let kind: Kind
    public let channel: String
    public let member: Member
    /// The member, serialized.
    public let memberJSON: String
    /// `{"channel":…,"member":{…},"type":"join"|"leave"}`, as `/v1/ws` and SSE push it.
    public let json: String

    public init(_ kind: Kind, channel: String, member: Member) {
        self.kind = kind
        self.channel = channel
        self.member = member
        memberJSON = member.json.serialized
        // Keys in sorted order, as `JSONValue.serialized` writes them.
        json = #"{"channel":"# + JSONValue.quoted(channel) + #","member":"# + memberJSON + #","type":""# + kind.rawValue + #""}"#
    }
}
