import Testing
import SwitchboardCore

/// Every permission decision, in one table (SPEC section 5).
@Suite("Access")
struct AccessTests {
    static let namespaces = Namespaces(policies: [
        "": NamespacePolicy(anonymous: true, clientPublish: false),
        "chat": NamespacePolicy(anonymous: true, clientPublish: true, presence: true),
        "private": NamespacePolicy(anonymous: false, clientPublish: true),
    ])

    static func access(_ identity: Identity) -> Access { Access(identity: identity, namespaces: namespaces) }
    static func token(publish: [String]?, channels: [String] = []) -> Identity {
        Identity(role: .token(Grants(channels: channels, publish: publish)), user: "ann")
    }

    @Test("publishing from a client: who may, where")
    func publish() {
        let cases: [(Identity, String, ProtocolError.Code?)] = [
            (.development, "news", nil),  // development mode: everything
            (.development, "collection:x", .forbidden),  // but never the reserved namespaces
            (.apiKey, "sys:stats", .forbidden),
            (.apiKey, "news", nil),
            (.anonymous, "chat:a", nil),  // client_publish on, anonymous namespace
            (.anonymous, "news", .forbidden),  // client_publish off
            (.anonymous, "private:a", .unauthorized),  // not anonymous
            (Self.token(publish: nil), "chat:a", nil),  // no claim: client_publish decides
            (Self.token(publish: nil), "news", .forbidden),
            (Self.token(publish: ["news"]), "news", nil),  // the claim grants
            (Self.token(publish: ["chat:mine"]), "chat:other", .forbidden),  // and bounds, even where client_publish is on
            (Self.token(publish: []), "chat:a", .forbidden),
        ]
        for (identity, channel, expected) in cases {
            #expect(Self.access(identity).refusal(.publish, channel: channel)?.code == expected, "\(identity.role) on \(channel)")
        }
    }

    @Test("REST publishing needs the API key or the claim")
    func publishOverREST() {
        #expect(Self.access(.anonymous).refusal(.publishOverREST, channel: "chat:a")?.code == .unauthorized)
        #expect(Self.access(Self.token(publish: nil)).refusal(.publishOverREST, channel: "chat:a")?.code == .forbidden)
        #expect(Self.access(Self.token(publish: ["chat:*"])).refusal(.publishOverREST, channel: "chat:a") == nil)
        #expect(Self.access(.apiKey).refusal(.publishOverREST, channel: "collection:a")?.code == .forbidden)
    }

    @Test("reading, presence and the presence switch")
    func reading() {
        #expect(Self.access(.anonymous).refusal(.subscribe(presence: false), channel: "news") == nil)
        #expect(Self.access(.anonymous).refusal(.subscribe(presence: true), channel: "news")?.code == .forbidden)
        #expect(Self.access(.anonymous).refusal(.subscribe(presence: true), channel: "chat:a") == nil)
        #expect(Self.access(.anonymous).refusal(.history, channel: "private:a")?.code == .unauthorized)
        #expect(Self.access(Self.token(publish: nil, channels: ["private:*"])).refusal(.history, channel: "private:a") == nil)
        #expect(Self.access(.anonymous).refusal(.presence, channel: "news")?.code == .forbidden)
        #expect(Self.access(.anonymous).refusal(.subscribe(presence: false), channel: "sys:stats")?.code == .unauthorized)
    }

    @Test("channel names are checked once, with one message")
    func names() throws {
        #expect(try Access.channel("chat:a.b@c-d_e") == "chat:a.b@c-d_e")
        #expect(throws: ProtocolError.self) { try Access.channel("bad/name") }
        #expect(throws: ProtocolError.self) { try Access.channel(String(repeating: "x", count: 201)) }
    }
}
