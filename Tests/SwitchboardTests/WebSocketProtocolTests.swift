import Foundation
import Testing
import SwitchboardCore

@Suite("WebSocket protocol")
struct WebSocketProtocolTests {
    @Test("welcome first, then replies carry the command id")
    func welcomeAndPing() async throws {
        try await TestServer.with { server in
            let client = WSClient(server)
            let welcome = try #require(try await client.next())
            #expect(welcome["type"] == "welcome")
            #expect(welcome["heartbeat"] == 25)
            #expect(welcome["client"]?.stringValue?.isEmpty == false)
            #expect(welcome["version"]?.stringValue != nil)
            let reply = try await client.command("ping")
            #expect(reply["type"] == "reply")
            #expect(reply["result"] == [:])
            _ = await client.close()
        }
    }

    @Test("subscribe, receive REST publishes live in order, unsubscribe stops them")
    func subscribeLive() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let client = try await WSClient.connect(server)
                let reply = try await client.command("subscribe", ["channel": "news"])
                #expect(reply["result"]?["channel"] == "news")
                #expect(reply["result"]?["offset"] == 0)
                #expect(reply["result"]?["recovered"] == false)
                try await http.publish("news", ["headline": "one"])
                try await http.publish("news", "two")
                let messages = try await client.messages(2, channel: "news")
                #expect(messages.map { $0["offset"] } == [1, 2])
                #expect(messages.map { $0["data"] } == [["headline": "one"], "two"])
                #expect(messages[0]["epoch"] == reply["result"]?["epoch"])

                #expect(try await client.command("unsubscribe", ["channel": "news"])["result"] == [:])
                try await http.publish("news", "three")
                try await http.publish("other", "x")
                // A ping round trip after the publishes: had "three" been delivered, it would come first.
                _ = try await client.command("ping")
                #expect(try await client.nothingMore(within: .milliseconds(300)))
                _ = await client.close()
            }
        } 
    }

    @Test("a collection's change events arrive on collection:C")
    func collectionEvents() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let client = try await WSClient.connect(server)
                _ = try await client.command("subscribe", ["channel": "collection:stocks"])
                try await http.put("/v1/collections/stocks/AAPL", #"{"price": 10}"#)
                try await http.delete("/v1/collections/stocks/AAPL")
                let events = try await client.messages(2)
                #expect(events.map { $0["data"]?["action"] } == ["created", "deleted"])
                #expect(events[0]["data"]?["record"]?["data"] == ["price": 10])
                _ = await client.close()
            }
        }
    }

    @Test("development mode lets clients publish anywhere but the reserved namespaces")
    func clientPublishPolicy() async throws {
        try await TestServer.with { server in
            let subscriber = try await WSClient.connect(server)
            let publisher = try await WSClient.connect(server)
            _ = try await subscriber.command("subscribe", ["channel": "chat:lobby"])
            let ok = try await publisher.command("publish", ["channel": "chat:lobby", "data": ["text": "hi"]])
            #expect(ok["result"]?["offset"] == 1)
            #expect(ok["result"]?["epoch"]?.stringValue?.isEmpty == false)
            let received = try await subscriber.messages(1)
            #expect(received.first?["data"] == ["text": "hi"])

            // client_publish is off in the default namespace; development mode allows everything.
            let news = try await publisher.command("publish", ["channel": "news", "data": 1])
            #expect(news["result"]?["offset"] == 1)
            let reserved = try await publisher.command("publish", ["channel": "collection:stocks", "data": 1])
            #expect(reserved["error"]?["code"] == "forbidden")
            #expect(reserved["error"]?["temporary"] == false)
            let system = try await publisher.command("publish", ["channel": "sys:stats", "data": 1])
            #expect(system["error"]?["code"] == "forbidden")
            _ = await subscriber.close()
            _ = await publisher.close()
        }
    }

    @Test("history over WebSocket and REST: latest, after a position, and limits")
    func history() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                for i in 1...10 { try await http.publish("chat:room", .int(Int64(i))) }
                let client = try await WSClient.connect(server)
                let latest = try await client.command("history", ["channel": "chat:room", "limit": 3])
                #expect(latest["result"]?["messages"]?.arrayValue?.map { $0["data"] } == [8, 9, 10])
                #expect(latest["result"]?["offset"] == 10)
                let epoch = try #require(latest["result"]?["epoch"]?.stringValue)
                let after = try await client.command("history", ["channel": "chat:room", "since": ["epoch": .string(epoch), "offset": 7]])
                #expect(after["result"]?["messages"]?.arrayValue?.map { $0["offset"] } == [8, 9, 10])
                #expect(after["result"]?["recovered"] == true)

                let rest = try await http.get("/v1/channels/chat:room/messages?since=\(epoch):4&limit=2")
                #expect(rest.status == 200)
                #expect(rest.json["messages"]?.arrayValue?.map { $0["offset"] } == [5, 6])
                let foreign = try await http.get("/v1/channels/chat:room/messages?since=zzzz:4")
                #expect(foreign.json["recovered"] == false)
                #expect(foreign.json["messages"]?.arrayValue == [])
                _ = await client.close()
            }
        }
    }

    @Test("history is bounded by the namespace's history_size")
    func historyPruned() async throws {
        try await TestServer.with(configure: { config in
            config.namespaces = Namespaces(policies: ["small": NamespacePolicy(historySize: 3)])
        }) { server in
            try await HTTP.with(server) { http in
                for i in 1...8 { try await http.publish("small:x", .int(Int64(i))) }
                let all = try await http.get("/v1/channels/small:x/messages?limit=100")
                #expect(all.json["messages"]?.arrayValue?.map { $0["offset"] } == [6, 7, 8])
                #expect(all.json["offset"] == 8)
            }
        }
    }
}

extension WSClient {
    /// True if no frame arrives within `duration`.
    func nothingMore(within duration: Duration) async throws -> Bool {
        do {
            let frame = try await next(timeout: duration)
            return frame == nil
        } catch is TestFailure {
            return true
        }
    }

    /// Connects without reading the welcome (for tests of the welcome itself).
    convenience init(_ server: TestServer) {
        self.init(url: server.wsURL, headers: [:])
    }
}

@Suite("Idempotent publish")
struct IdempotencyTests {
    @Test("a repeated idempotency_key publishes nothing and answers the first position, over REST and WebSocket")
    func repeatedKey() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let subscriber = try await WSClient.connect(server)
                _ = try await subscriber.command("subscribe", ["channel": "chat:idem"])
                let first = try await http.post("/v1/channels/chat:idem/messages", #"{"data": "once", "idempotency_key": "k1"}"#)
                #expect(first.status == 201)
                let again = try await http.post("/v1/channels/chat:idem/messages", #"{"data": "twice", "idempotency_key": "k1"}"#)
                #expect(again.status == 200)
                #expect(again.json["offset"] == first.json["offset"])
                #expect(again.json["epoch"] == first.json["epoch"])

                let ws = try await WSClient.connect(server)
                let a = try await ws.command("publish", ["channel": "chat:idem", "data": "ws", "idempotency_key": "k2"])
                let b = try await ws.command("publish", ["channel": "chat:idem", "data": "ws again", "idempotency_key": "k2"])
                #expect(a["result"] == b["result"])
                #expect(a["result"]?["offset"] == 2)
                // The same key on another channel is another message.
                let other = try await http.post("/v1/channels/chat:other/messages", #"{"data": 1, "idempotency_key": "k1"}"#)
                #expect(other.status == 201)

                let received = try await subscriber.messages(2)
                #expect(received.map { $0["data"] } == ["once", "ws"])
                #expect(try await subscriber.nothingMore(within: .milliseconds(200)))
                #expect(try await http.get("/v1/channels/chat:idem/messages").json["offset"] == 2)
                _ = await subscriber.close()
                _ = await ws.close()
            }
        }
    }
}
