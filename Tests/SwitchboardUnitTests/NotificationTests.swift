import Testing
import SwitchboardCore
@testable import SwitchboardPostgres

@Suite("Cluster notifications")
struct NotificationTests {
    @Test("messages, references and presence lines round-trip; data keeps its spaces")
    func roundTrip() {
        let message = ChannelMessage(channel: "chat:a b".replacingOccurrences(of: " ", with: "_"), epoch: "k3x9", offset: 7, data: #"{"text":"hello world"}"#)
        let member = Member(client: "c1", user: "ann", info: ["color": "red"])
        let lines = [
            Notification.line(for: message),
            Notification.line(for: PresenceChange(.join, channel: "chat:a", member: member), node: "n1"),
            Notification.line(for: PresenceChange(.leave, channel: "chat:a", member: Member(client: "c2", user: nil, info: nil)), node: "n2"),
        ]
        let payloads = Notification.payloads(lines)
        #expect(payloads.count == 1)
        #expect(Notification.parse(payloads[0]) == [
            .message(message),
            .presence(PresenceChange(.join, channel: "chat:a", member: member), node: "n1"),
            .presence(PresenceChange(.leave, channel: "chat:a", member: Member(client: "c2", user: nil, info: nil)), node: "n2"),
        ])
    }

    @Test("a message too large for NOTIFY travels as a reference to read")
    func largeMessage() {
        let big = ChannelMessage(channel: "c", epoch: "e", offset: 3, data: "\"" + String(repeating: "x", count: 9000) + "\"")
        let line = Notification.line(for: big)
        #expect(line == "r 3 e c")
        #expect(Notification.parse(line) == [.reference(channel: "c", epoch: "e", offset: 3)])
    }

    @Test("lines are batched into payloads under PostgreSQL's limit, in order")
    func batching() {
        let lines = (1...100).map { Notification.line(for: ChannelMessage(channel: "c", epoch: "e", offset: Int64($0), data: String(repeating: "1", count: 300))) }
        let payloads = Notification.payloads(lines)
        #expect(payloads.count > 1)
        #expect(payloads.allSatisfy { $0.utf8.count < Notification.payloadLimit })
        let offsets = payloads.flatMap(Notification.parse).compactMap { if case .message(let m) = $0 { m.offset } else { nil } }
        #expect(offsets == Array(1...100))
    }

    @Test("garbage lines are skipped, good ones kept")
    func garbage() {
        let parsed = Notification.parse("x 1 2\nm notanumber e c 1\nm 5 e bad/channel 1\nj n1 c {not json\nm 5 e c 42\n\n")
        #expect(parsed == [.message(ChannelMessage(channel: "c", epoch: "e", offset: 5, data: "42"))])
    }
}

@Suite("Database URL")
struct PostgresURLTests {
    @Test("user, password, host, port, database and sslmode")
    func full() throws {
        let url = try PostgresURL("postgres://ann:s%40cret@db.example.com:6432/switch?sslmode=require")
        #expect(url.user == "ann")
        #expect(url.password == "s@cret")
        #expect(url.host == "db.example.com")
        #expect(url.port == 6432)
        #expect(url.database == "switch")
        #expect(url.sslMode == .require)
        #expect(!url.description.contains("s@cret"))
    }

    @Test("postgresql:// and a Unix socket directory")
    func socket() throws {
        let url = try PostgresURL("postgresql://postgres@/switch?host=/var/run/postgresql")
        #expect(url.socketDirectory == "/var/run/postgresql")
        #expect(url.host == nil)
        #expect(url.port == 5432)
    }

    @Test("missing parts and unknown parameters are clear errors")
    func errors() {
        for bad in ["postgres://host/db", "postgres://u@host/", "postgres://u@/db", "postgres://u@h/db?sslmode=sometimes", "postgres://u@h/db?pool=3"] {
            #expect(throws: PostgresURL.Invalid.self, "\(bad)") { try PostgresURL(bad) }
        }
    }

    @Test("a presence change's JSON, built once, is what serializing its parts gives")
    func presenceJSON() {
        for member in [Member(client: "c1", user: "ann \"a\"", info: ["color": "red"]), Member(client: "c2", user: nil, info: nil)] {
            for kind in [PresenceChange.Kind.join, .leave] {
                let change = PresenceChange(kind, channel: "chat:ü\"x", member: member)
                let expected = JSONValue.object(["type": .string(kind.rawValue), "channel": .string(change.channel), "member": member.json])
                #expect(change.json == expected.serialized)
                #expect(change.memberJSON == member.json.serialized)
            }
        }
    }
}
