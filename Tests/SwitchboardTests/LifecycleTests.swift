import Foundation
import Testing
import SwitchboardCore
import SwitchboardServer

/// Heartbeats, slow consumers, presence, fallbacks and metrics: whatever goes wrong, within
/// history no client loses or reorders a message.
@Suite("Connection lifecycle")
struct LifecycleTests {
    @Test("a client that stops reading is closed with 4100 while 10,000 messages go out; nobody else is slowed; it resumes and gets everything")
    func slowConsumer() async throws {
        let total = 10_000
        try await TestServer.with(configure: { config in
            config.limits.queueBytes = 2 * 1024 * 1024
            config.namespaces = Namespaces(policies: ["feed": NamespacePolicy(historySize: 20_000)])
        }) { server in
            let slow = try RawWebSocket(port: server.port, receiveBuffer: 4096)
            #expect(slow.readFrame()?.json?["type"] == "welcome")
            slow.sendText(#"{"id": 1, "op": "subscribe", "channel": "feed:x"}"#)
            #expect(slow.readFrame()?.json?["type"] == "reply")
            // From here on the slow client reads nothing.
            let fast = try await WSClient.connect(server)
            _ = try await fast.command("subscribe", ["channel": "feed:x"])
            let padding = String(repeating: "x", count: 1000)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for p in 0..<4 {
                    group.addTask {
                        try await HTTP.with(server) { http in
                            for i in stride(from: p, to: total, by: 4) {
                                try await http.publish("feed:x", ["i": .int(Int64(i)), "pad": .string(padding)])
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            // The fast subscriber got every message, in offset order.
            let received = try await fast.messages(total, timeout: .seconds(60))
            #expect(received.map { $0["offset"]?.intValue } == (1...total).map { Int64($0) })
            _ = await fast.close()

            // The slow one got a prefix of the stream, then 4100.
            var offsets: [Int64] = []
            var closeCode: UInt16?
            while let frame = slow.readFrame(timeout: .seconds(10)) {
                if let code = frame.closeCode { closeCode = code; break }
                if let offset = frame.json?["offset"]?.intValue { offsets.append(offset) }
            }
            #expect(closeCode == 4100)
            #expect(offsets.count < total)
            #expect(offsets == Array(1...Int64(max(offsets.count, 1))).prefix(offsets.count).map { $0 })
            let epoch = try #require(received.first?["epoch"])

            // It reconnects with its last offset and gets exactly the rest.
            let resumed = try await WSClient.connect(server)
            let reply = try await resumed.command("subscribe", ["channel": "feed:x", "since": ["epoch": epoch, "offset": .int(offsets.last ?? 0)]])
            #expect(reply["result"]?["recovered"] == true)
            let rest = try await resumed.messages(total - offsets.count, timeout: .seconds(60))
            #expect(rest.map { $0["offset"]?.intValue } == ((Int64(offsets.count) + 1)...Int64(total)).map { $0 })
            _ = await resumed.close()
            let metrics = try await HTTP.with(server) { http in try await http.get("/metrics").text }
            #expect(metrics.contains("switchboard_slow_consumer_closes_total 1"))
        }
    }

    @Test("a peer that never answers pings is closed, and leaves presence, within two heartbeats")
    func heartbeatReapsDeadPeer() async throws {
        try await TestServer.with(configure: { $0.heartbeatSeconds = 1 }) { server in
            let watcher = try await WSClient.connect(server)
            _ = try await watcher.command("subscribe", ["channel": "chat:hb", "presence": true])
            let dead = try RawWebSocket(port: server.port)
            #expect(dead.readFrame()?.json?["heartbeat"] == 1)
            dead.sendText(#"{"id": 1, "op": "subscribe", "channel": "chat:hb"}"#)
            let join = try #require(try await watcher.next())
            #expect(join["type"] == "join")
            // The dead peer reads frames but never answers a ping.
            let started = ContinuousClock.now
            var closeCode: UInt16?
            while let frame = dead.readFrame(timeout: .seconds(5)) {
                if let code = frame.closeCode { closeCode = code; break }
            }
            #expect(closeCode == 1001)
            #expect(ContinuousClock.now - started < .seconds(4))
            let leave = try #require(try await watcher.next(timeout: .seconds(5)))
            #expect(leave["type"] == "leave")
            #expect(leave["member"]?["client"] == join["member"]?["client"])
            // The watcher, which answers pings, is still connected.
            #expect(try await watcher.command("ping")["result"] == [:])
            _ = await watcher.close()
        }
    }

    @Test("a client that never answers pings but keeps sending commands stays connected")
    func commandsAreSignsOfLife() async throws {
        try await TestServer.with(configure: { $0.heartbeatSeconds = 1 }) { server in
            let client = try RawWebSocket(port: server.port)
            #expect(client.readFrame()?.json?["type"] == "welcome")
            // 3.5 heartbeats of `ping` commands and no pongs: more than the two that close a silent peer.
            for id in 1...9 {
                client.sendText(#"{"id": \#(id), "op": "ping"}"#)
                try await Task.sleep(for: .milliseconds(400))
            }
            client.sendText(#"{"id": 100, "op": "subscribe", "channel": "chat:alive"}"#)
            var reply: JSONValue?
            while let frame = client.readFrame(timeout: .seconds(3)) {
                #expect(frame.closeCode == nil)
                if frame.json?["id"] == 100 { reply = frame.json; break }
            }
            #expect(reply?["result"]?["channel"] == "chat:alive")
        }
    }

    @Test("presence: join and leave pushes, the presence op and REST, members with client, user and info")
    func presence() async throws {
        try await TestServer.with(configure: SecurityTests.secured) { server in
            let ann = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(try await Tokens.user("ann", channels: ["chat:*"], info: ["name": "Ann"]))"])
            _ = try await ann.command("subscribe", ["channel": "chat:room", "presence": true])
            let bob = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(try await Tokens.user("bob", channels: ["chat:*"], info: ["name": "Bob"]))"])
            _ = try await bob.command("subscribe", ["channel": "chat:room"])
            let join = try #require(try await ann.next())
            #expect(join["type"] == "join")
            #expect(join["channel"] == "chat:room")
            #expect(join["member"]?["user"] == "bob")
            #expect(join["member"]?["info"] == ["name": "Bob"])

            let members = try await ann.command("presence", ["channel": "chat:room"])
            let users = members["result"]?["members"]?.arrayValue?.compactMap { $0["user"]?.stringValue }.sorted()
            #expect(users == ["ann", "bob"])
            let rest = try await HTTP.with(server) { http in
                try await http.get("/v1/channels/chat:room/presence", headers: SecurityTests.key)
            }
            #expect(rest.status == 200)
            #expect(rest.json["members"]?.arrayValue?.count == 2)

            _ = await bob.close()
            let leave = try #require(try await ann.next())
            #expect(leave["type"] == "leave")
            #expect(leave["member"]?["user"] == "bob")
            // Presence is a namespace policy.
            let off = try await ann.command("presence", ["channel": "chatroom:x"])
            #expect(off["error"]?["code"] == "forbidden")
            _ = await ann.close()
        }
    }

    @Test("the same publishes read over WebSocket, SSE and long-polling are identical")
    func fallbacksAgree() async throws {
        try await TestServer.with { server in
            let ws = try await WSClient.connect(server)
            _ = try await ws.command("subscribe", ["channel": "chat:cmp"])
            let sse = try RawEventStream(port: server.port, path: "/v1/sse?channels=chat:cmp")
            #expect(sse.status == 200)
            let subscribed = try #require(sse.next())
            #expect(subscribed.event == "subscribed")
            let epoch = try #require(subscribed.json?["epoch"]?.stringValue)

            let poller = Task {
                try await HTTP.with(server) { http in
                    var messages: [JSONValue] = []
                    var position = "\(epoch):0"
                    while messages.count < 40 {
                        let page = try await http.get("/v1/poll?channel=chat:cmp&since=\(position)&timeout=10")
                        #expect(page.status == 200)
                        let batch = page.json["messages"]?.arrayValue ?? []
                        messages += batch
                        position = "\(page.json["epoch"]!.stringValue!):\(page.json["offset"]!.intValue!)"
                    }
                    return messages
                }
            }
            try await HTTP.with(server) { http in
                for i in 1...40 {
                    try await http.publish("chat:cmp", ["n": .int(Int64(i))])
                    if i % 10 == 0 { try await Task.sleep(for: .milliseconds(50)) }
                }
            }
            let overWS = try await ws.messages(40)
            let overSSE = try sse.messages(40).compactMap(\.json)
            let overPoll = try await poller.value
            #expect(overWS.count == 40)
            #expect(overSSE == overWS)
            #expect(overPoll == overWS)
            #expect(overWS.map { $0["offset"]?.intValue } == (1...40).map { Int64($0) })
            _ = await ws.close()
        }
    }

    @Test("SSE: ids carry every channel's position and Last-Event-ID resumes without a gap")
    func eventStreamResume() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let first = try RawEventStream(port: server.port, path: "/v1/sse?channels=chat:a,chat:b")
                _ = first.next()
                _ = first.next()
                try await http.publish("chat:a", "a1")
                try await http.publish("chat:b", "b1")
                let events = try first.messages(2)
                let lastID = try #require(events.last?.id)
                #expect(lastID.contains("chat:a@"))
                #expect(lastID.contains(";chat:b@"))
                first.close()

                try await http.publish("chat:a", "a2")
                try await http.publish("chat:b", "b2")
                try await http.publish("chat:a", "a3")
                let second = try RawEventStream(port: server.port, path: "/v1/sse?channels=chat:a,chat:b", headers: ["Last-Event-ID": lastID])
                var subscribed: [RawEventStream.Event] = []
                var missed: [RawEventStream.Event] = []
                while missed.count < 3, let event = second.next() {
                    if event.event == "subscribed" { subscribed.append(event) } else { missed.append(event) }
                }
                #expect(subscribed.count == 2)
                #expect(subscribed.allSatisfy { $0.json?["recovered"] == true })
                // Order is per channel: each channel's missed messages, in offset order.
                #expect(missed.filter { $0.json?["channel"] == "chat:a" }.map { $0.json?["data"] } == ["a2", "a3"])
                #expect(missed.filter { $0.json?["channel"] == "chat:b" }.map { $0.json?["data"] } == ["b2"])
                try await http.publish("chat:b", "b3")
                #expect(try second.messages(1).first?.json?["data"] == "b3")
            }
        }
    }

    @Test("SSE: every event's id, the subscribed ones too, is a safe place to resume: a stream cut after any event loses nothing")
    func eventStreamResumeFromAnyEvent() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let start = try RawEventStream(port: server.port, path: "/v1/sse?channels=chat:g1,chat:g2")
                _ = start.next()  // chat:g1's subscribed event
                let startID = try #require(start.next()?.id)  // chat:g2's: both channels at 0
                start.close()
                try await http.publish("chat:g1", "A")
                try await http.publish("chat:g1", "B")
                try await http.publish("chat:g2", "C")
                // Resume from the start: two subscribed events and three missed messages.
                let stream = try RawEventStream(port: server.port, path: "/v1/sse?channels=chat:g1,chat:g2", headers: ["Last-Event-ID": startID])
                var events: [RawEventStream.Event] = []
                while events.filter({ $0.event == "message" }).count < 3, let event = stream.next() { events.append(event) }
                stream.close()
                #expect(events.count == 5)
                // No id runs ahead of what was delivered: a channel's offset in the ids never
                // exceeds the last message of it sent so far, and never goes back.
                var delivered: [String: Int64] = ["chat:g1": 0, "chat:g2": 0]
                var previous: [String: Position] = [:]
                for event in events {
                    if event.event == "message", let json = event.json {
                        delivered[json["channel"]!.stringValue!] = json["offset"]!.intValue!
                    }
                    let ids = PositionList.parse(try #require(event.id))
                    #expect(Set(ids.keys) == ["chat:g1", "chat:g2"], "every channel with a position is in every id: \(event.id ?? "")")
                    for (channel, position) in ids {
                        #expect(position.offset == delivered[channel], "\(event.event ?? "") id \(event.id ?? "") ran ahead of \(delivered)")
                        #expect(position.offset >= previous[channel]?.offset ?? 0)
                    }
                    previous = ids
                }
                // Cut after each event in turn and resume from its id: exactly what followed it.
                let all = events.filter { $0.event == "message" }.map { $0.json!["data"]!.stringValue! }
                for (index, event) in events.enumerated() {
                    let after = events[(index + 1)...].filter { $0.event == "message" }.map { $0.json!["data"]!.stringValue! }
                    let again = try RawEventStream(port: server.port, path: "/v1/sse?channels=chat:g1,chat:g2", headers: ["Last-Event-ID": event.id!])
                    var got: [String] = []
                    var subscribed: [RawEventStream.Event] = []
                    while subscribed.count < 2 || got.count < after.count, let next = again.next(timeout: .seconds(3)) {
                        if next.event == "subscribed" { subscribed.append(next) } else if next.event == "message" { got.append(next.json!["data"]!.stringValue!) }
                    }
                    again.close()
                    #expect(subscribed.allSatisfy { $0.json?["recovered"] == true })
                    #expect(got.sorted() == after.sorted(), "resumed after event \(index) of \(all)")
                }
            }
        }
    }

    @Test("SSE checks origin and credentials like the WebSocket handshake")
    func eventStreamRefusals() async throws {
        try await TestServer.with(configure: { SecurityTests.secured(&$0); $0.allowedOrigins = ["https://app.example.com"] }) { server in
            #expect(try RawEventStream(port: server.port, path: "/v1/sse?channels=private").status == 401)
            #expect(try RawEventStream(port: server.port, path: "/v1/sse?channels=public:x", headers: ["Origin": "https://evil.example"]).status == 403)
            #expect(try RawEventStream(port: server.port, path: "/v1/sse?channels=bad!name").status == 400)
            #expect(try RawEventStream(port: server.port, path: "/v1/sse?channels=public:x", headers: ["Origin": "https://app.example.com"]).status == 200)
            let token = try await Tokens.user("ann", channels: ["chat:*"])
            #expect(try RawEventStream(port: server.port, path: "/v1/sse?channels=chat:x&token=\(token)").status == 200)
        }
    }

    @Test("long-poll answers at once when something is newer, waits otherwise, and ends empty at the timeout")
    func longPoll() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                try await http.publish("chat:lp", "one")
                let epoch = try #require(try await http.get("/v1/channels/chat:lp/messages").json["epoch"]?.stringValue)
                let now = try await http.get("/v1/poll?channel=chat:lp&since=\(epoch):0&timeout=30")
                #expect(now.json["messages"]?.arrayValue?.map { $0["data"] } == ["one"])
                #expect(now.json["offset"] == 1)

                let empty = try await http.get("/v1/poll?channel=chat:lp&since=\(epoch):1&timeout=1")
                #expect(empty.status == 200)
                #expect(empty.json["messages"]?.arrayValue == [])
                #expect(empty.json["offset"] == 1)

                let waiting = Task { try await HTTP.with(server) { h in try await h.get("/v1/poll?channel=chat:lp&since=\(epoch):1&timeout=30") } }
                try await Task.sleep(for: .milliseconds(200))
                try await http.publish("chat:lp", "two")
                let woken = try await waiting.value
                #expect(woken.json["messages"]?.arrayValue?.map { $0["data"] } == ["two"])

                let foreign = try await http.get("/v1/poll?channel=chat:lp&since=other:1&timeout=30")
                #expect(foreign.json["recovered"] == false)
                #expect(foreign.json["offset"] == 2)
                #expect(try await http.get("/v1/poll?channel=chat:lp&timeout=99").status == 400)
                #expect(try await http.get("/v1/poll?since=\(epoch):1").status == 400)
            }
        }
    }

    @Test("metrics count connections, messages, requests and store time")
    func metrics() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let client = try await WSClient.connect(server)
                _ = try await client.command("subscribe", ["channel": "chat:m"])
                try await http.publish("chat:m", 1)
                _ = try await client.messages(1)
                let text = try await http.get("/metrics").text
                #expect(text.contains(#"switchboard_connections{transport="websocket"} 1"#))
                #expect(text.contains("switchboard_subscriptions 1"))
                #expect(text.contains("switchboard_messages_published_total 1"))
                #expect(text.contains("switchboard_messages_delivered_total 1"))
                #expect(text.contains(#"switchboard_http_requests_total{method="POST",route="/v1/channels/{channel}/messages",status="201"} 1"#))
                #expect(text.contains("switchboard_store_duration_seconds_count"))
                _ = await client.close()
            }
        }
    }
}
