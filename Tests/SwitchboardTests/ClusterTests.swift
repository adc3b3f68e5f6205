import Foundation
import Synchronization
import Testing
import Logging
import SwitchboardBench
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardServer

/// Several nodes on one real PostgreSQL (SPEC section 7): the single-node promises — offsets
/// 1, 2, 3 … with no gap, resume anywhere, nothing acknowledged ever lost — across nodes.
@Suite("Cluster on PostgreSQL")
struct ClusterTests {
    @Test("nodes starting at once on a new database migrate it once and share its epoch")
    func concurrentMigrations() async throws {
        let database = try await PostgresServer.newDatabase()
        let url = try PostgresURL(database)
        let epochs = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<4 {
                group.addTask {
                    try await PostgresStore.open(url: url, nodeID: "n\(i)", logger: Logger(label: "test")).databaseEpoch
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(epochs).count == 1)
        let postgres = try await PostgresServer.start()
        let name = String(database.split(separator: "/").last!)
        // Each version applied once, in order.
        let applied = try postgres.value("SELECT string_agg(version::text, ',' ORDER BY version) FROM switchboard_migrations", database: name)
        #expect(applied == "1,2")
    }

    @Test("publishers on all three nodes at once: every subscriber on every node gets 1…N exactly once, in order")
    func publishersEverywhere() async throws {
        try await TestCluster.with { nodes in
            var subscribers: [WSClient] = []
            for node in nodes {
                for _ in 0..<2 {
                    let client = try await WSClient.connect(node)
                    _ = try await client.command("subscribe", ["channel": "chat:all"])
                    subscribers.append(client)
                }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (n, node) in nodes.enumerated() {
                    for w in 0..<2 {
                        group.addTask {
                            try await HTTP.with(node) { http in
                                for i in 0..<100 { try await http.publish("chat:all", ["node": .int(Int64(n)), "w": .int(Int64(w)), "i": .int(Int64(i))]) }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            for subscriber in subscribers {
                let messages = try await subscriber.messages(600, channel: "chat:all")
                #expect(messages.map { $0["offset"]?.intValue } == (1...600).map { Int64($0) })
                // Each publisher's own messages keep their order.
                for n in 0..<3 {
                    for w in 0..<2 {
                        let mine = messages.compactMap { m -> Int64? in
                            m["data"]?["node"] == .int(Int64(n)) && m["data"]?["w"] == .int(Int64(w)) ? m["data"]?["i"]?.intValue : nil
                        }
                        #expect(mine == (0..<100).map { Int64($0) })
                    }
                }
                _ = await subscriber.close()
            }
        }
    }

    @Test("a collection written on one node, listed on a second, subscribed at that offset on a third while writes go on: gap-free")
    func snapshotThenStreamAcrossNodes() async throws {
        try await TestCluster.with { nodes in
            let writer = Task {
                try await HTTP.with(nodes[0]) { http in
                    for i in 0..<300 {
                        let response = try await http.put("/v1/collections/prices/S\(i % 20)", #"{"i": \#(i)}"#)
                        if response.status >= 300 { throw TestFailure("write failed: \(response.status)") }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(150))
            // The snapshot on node 2, while writes go on.
            let snapshot = try await HTTP.with(nodes[1]) { http in try await http.get("/v1/collections/prices?limit=1000").json }
            let epoch = try #require(snapshot["epoch"])
            let offset = try #require(snapshot["offset"]?.intValue)
            var state: [String: Int64] = [:]
            for item in snapshot["items"]?.arrayValue ?? [] { state[item["id"]!.stringValue!] = item["version"]!.intValue! }
            // Subscribed on node 3 from the snapshot's offset.
            let client = try await WSClient.connect(nodes[2])
            let reply = try await client.command("subscribe", ["channel": "collection:prices", "since": ["epoch": epoch, "offset": .int(offset)]])
            #expect(reply["result"]?["recovered"] == true)
            try await writer.value
            let changes = try await client.messages(300 - Int(offset), channel: "collection:prices")
            #expect(changes.map { $0["offset"]?.intValue } == ((offset + 1)...300).map { Int64($0) })
            for change in changes {
                let record = change["data"]!["record"]!
                let id = record["id"]!.stringValue!
                // Each change is the next version of its record: none missed, none repeated.
                #expect(record["version"]!.intValue! == (state[id] ?? 0) + 1)
                state[id] = record["version"]!.intValue!
            }
            let final = try await HTTP.with(nodes[1]) { http in try await http.get("/v1/collections/prices?limit=1000").json }
            for item in final["items"]?.arrayValue ?? [] {
                #expect(state[item["id"]!.stringValue!] == item["version"]!.intValue)
            }
            _ = await client.close()
        }
    }

    @Test("idempotency keys and history are shared: a retry on another node publishes nothing")
    func sharedIdempotencyAndHistory() async throws {
        try await TestCluster.with(nodes: 2) { nodes in
            let body = #"{"data": {"order": 17}, "idempotency_key": "order-17"}"#
            let first = try await HTTP.with(nodes[0]) { http in try await http.post("/v1/channels/chat:orders/messages", body) }
            let retry = try await HTTP.with(nodes[1]) { http in try await http.post("/v1/channels/chat:orders/messages", body) }
            #expect(first.status == 201)
            #expect(retry.status == 200)
            #expect(retry.json["offset"] == first.json["offset"])
            #expect(retry.json["epoch"] == first.json["epoch"])
            let history = try await HTTP.with(nodes[1]) { http in try await http.get("/v1/channels/chat:orders/messages").json }
            #expect(history["messages"]?.arrayValue?.count == 1)
            #expect(history["epoch"] == first.json["epoch"])
            // Over WebSocket on the other node, the same.
            let client = try await WSClient.connect(nodes[1])
            let again = try await client.command("publish", ["channel": "chat:orders", "data": ["order": 17], "idempotency_key": "order-17"])
            #expect(again["result"]?["offset"] == first.json["offset"])
            _ = await client.close()
        }
    }

    @Test("concurrent publishes with the same keys, batched together: each key publishes once, every retry gets its position")
    func concurrentIdempotentPublishes() async throws {
        try await TestCluster.with(nodes: 2) { nodes in
            // The two nodes send the same keys in opposite orders, so their batches hold keys
            // the other wants: a batch that took its locks out of order deadlocked here.
            for round in 0..<4 {
                let channel = "chat:keys\(round)"
                let results = try await withThrowingTaskGroup(of: (String, Int64).self) { group in
                    for i in 0..<72 {
                        let node = nodes[i % 2]
                        let key = "k\(i % 2 == 0 ? (i / 2) % 12 : 11 - (i / 2) % 12)"
                        group.addTask {
                            let response = try await HTTP.with(node) { http in
                                try await http.post("/v1/channels/\(channel)/messages", #"{"data": "\#(key)", "idempotency_key": "\#(key)"}"#)
                            }
                            guard let offset = response.json["offset"]?.intValue else { throw TestFailure("\(response.status) \(response.text)") }
                            return (key, offset)
                        }
                    }
                    var all: [(String, Int64)] = []
                    for try await result in group { all.append(result) }
                    return all
                }
                // One offset per key, the same for every publish of it, and 1...12 used once each.
                let byKey = Dictionary(grouping: results, by: \.0).mapValues { Set($0.map(\.1)) }
                #expect(byKey.count == 12)
                #expect(byKey.values.allSatisfy { $0.count == 1 })
                #expect(Set(byKey.values.flatMap { $0 }) == Set(1...12))
                let history = try await HTTP.with(nodes[0]) { http in try await http.get("/v1/channels/\(channel)/messages").json }
                #expect(history["messages"]?.arrayValue?.count == 12)
            }
        }
    }

    @Test("resume on another node: WebSocket since, SSE Last-Event-ID and poll since, through nginx")
    func resumeThroughLoadBalancer() async throws {
        try await TestCluster.with(configure: { $0.trustedProxies = [AddressRange("127.0.0.1")!] }) { nodes in
            try await Nginx.with(upstreams: nodes.map(\.port)) { nginx in
                let wsURL = "ws://127.0.0.1:\(nginx.port)/v1/ws"
                let lb = TestServer(port: nginx.port, databasePath: "", node: nil)
                try await HTTP.with(lb) { http in
                    for i in 1...5 { try await http.publish("chat:resume", .int(Int64(i))) }
                }
                // WebSocket: three connections in a row land on three different nodes.
                var position: JSONValue = ["epoch": .null, "offset": 0]
                var seen: [Int64] = []
                for round in 0..<3 {
                    let client = try await WSClient.connect(lb, url: wsURL)
                    var fields: [String: JSONValue] = ["channel": "chat:resume"]
                    if round > 0 { fields["since"] = position } else { fields["since"] = ["epoch": .string(try await Self.epoch(lb)), "offset": 0] }
                    let reply = try await client.command("subscribe", fields)
                    #expect(reply["result"]?["recovered"] == true)
                    let messages = try await client.messages(5, channel: "chat:resume")
                    seen += messages.compactMap { $0["offset"]?.intValue }
                    position = ["epoch": messages.last!["epoch"]!, "offset": messages.last!["offset"]!]
                    _ = await client.close()
                    try await HTTP.with(lb) { http in
                        for i in 1...5 { try await http.publish("chat:resume", .int(Int64(100 * round + i))) }
                    }
                }
                #expect(seen == Array(1...15))

                // SSE with Last-Event-ID, on whichever node nginx picks.
                let lastEventID = "chat:resume@\(position["epoch"]!.stringValue!):15"
                let sse = try RawEventStream(port: nginx.port, path: "/v1/sse?channels=chat:resume", headers: ["Last-Event-ID": lastEventID])
                #expect(sse.status == 200)
                #expect(sse.next()?.event == "subscribed")
                #expect(try sse.messages(5).map { $0.json?["offset"]?.intValue } == (16...20).map { Int64($0) })
                sse.close()

                // Long-polling with since.
                let epoch = position["epoch"]!.stringValue!
                let polled = try await HTTP.with(lb) { http in
                    try await http.get("/v1/poll?channel=chat:resume&since=\(epoch):18&timeout=1").json
                }
                #expect(polled["recovered"] == true)
                #expect(polled["messages"]?.arrayValue?.map { $0["offset"] } == [19, 20])
            }
        }
    }

    static func epoch(_ server: TestServer) async throws -> String {
        try await HTTP.with(server) { http in try await http.get("/v1/channels/chat:resume/messages?limit=1").json["epoch"]!.stringValue! }
    }

    @Test("presence is cluster-wide: members and joins cross nodes; a killed node's members leave within node_timeout_seconds")
    func presenceAcrossNodes() async throws {
        let database = try await PostgresServer.newDatabase()
        try await TestServer.with(database: database, configure: { $0.nodeTimeoutSeconds = 3 }) { node1 in
            let doomed = try NodeProcess(database: database, config: "node_timeout_seconds: 3\n")
            try await doomed.start()
            let watcher = try await WSClient.connect(node1)
            _ = try await watcher.command("subscribe", ["channel": "chat:room", "presence": true])
            let remote = TestServer(port: doomed.port, databasePath: "", node: nil)
            let member = try await WSClient.connect(remote)
            _ = try await member.command("subscribe", ["channel": "chat:room"])
            // The join made on the other node reaches this one.
            let join = try await watcher.next(timeout: .seconds(10))
            #expect(join?["type"] == "join")
            let memberClient = try #require(join?["member"]?["client"]?.stringValue)
            // Both nodes list both members.
            for server in [node1, remote] {
                let members = try await HTTP.with(server) { http in try await http.get("/v1/channels/chat:room/presence").json["members"] }
                #expect(members?.arrayValue?.count == 2, "\(server.port)")
            }
            let viaWS = try await watcher.command("presence", ["channel": "chat:room"])
            #expect(viaWS["result"]?["members"]?.arrayValue?.contains { $0["client"]?.stringValue == memberClient } == true)

            // SIGKILL: nobody says goodbye, the node's row stops being renewed.
            let killed = ContinuousClock.now
            doomed.kill()
            let leave = try await watcher.next(timeout: .seconds(15))
            #expect(leave?["type"] == "leave")
            #expect(leave?["member"]?["client"]?.stringValue == memberClient)
            #expect(ContinuousClock.now - killed < .seconds(3 + 4))
            let members = try await HTTP.with(node1) { http in try await http.get("/v1/channels/chat:room/presence").json["members"] }
            #expect(members?.arrayValue?.count == 1)
            _ = await watcher.close()
        }
    }

    @Test("switchboard bench with a --url per node: subscribers and publishers spread over the cluster, every message delivered in order")
    func benchAcrossNodes() async throws {
        try await TestCluster.with(configure: TestServer.manyClients) { nodes in
            let options = try BenchOptions(
                urls: nodes.map { "http://127.0.0.1:\($0.port)" }, token: nil, apiKey: nil, channel: "bench", threads: 1, quiet: true
            )
            let config = FanoutConfig(
                subscribers: 30, rate: 100, size: 64, duration: 1, warmup: 0.2, grace: 2,
                publishers: 3, connectRate: 0, connectConcurrency: 30
            )
            let result = try await FanoutScenario.run(options, config)
            #expect(result.connected == 30)
            #expect(result.delivered == result.expected)
            #expect(result.lost == 0 && result.gaps == 0 && result.reorders == 0)
            // Each node took publishes and delivered to its share of the subscribers.
            for node in nodes {
                let metrics = try await HTTP.with(node) { http in try await http.get("/metrics").text }
                for name in ["switchboard_messages_published_total", "switchboard_messages_delivered_total"] {
                    let value = metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
                    #expect((value ?? 0) > 0, "\(name) on \(node.port)")
                }
            }
        }
    }

    @Test("GET /v1/channels counts the subscribers of every node")
    func channelsCountTheCluster() async throws {
        try await TestCluster.with(nodes: 2) { nodes in
            var clients: [WSClient] = []
            for node in nodes {
                let client = try await WSClient.connect(node)
                _ = try await client.command("subscribe", ["channel": "chat:counted"])
                clients.append(client)
            }
            // Reports are a second apart.
            var count: JSONValue?
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline {
                count = try await HTTP.with(nodes[0]) { http in
                    try await http.get("/v1/channels").json["channels"]?.arrayValue?.first { $0["channel"] == "chat:counted" }?["subscribers"]
                }
                if count == 2 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(count == 2)
            for client in clients { _ = await client.close() }
        }
    }

    @Test("kill -9 of a node under load: every acknowledged publish is there exactly once, every subscriber saw a gap-free, duplicate-free run")
    func killUnderLoad() async throws {
        let database = try await PostgresServer.newDatabase()
        let config = """
            namespaces: {load: {anonymous: true, client_publish: true, history_size: 10000}}
            limits: {connections_per_ip: 100000, handshakes_per_second: 100000}
            trusted_proxies: [127.0.0.1]
            node_timeout_seconds: 3
            """
        let nodes = try (0..<3).map { _ in try NodeProcess(database: database, config: config) }
        for node in nodes { try await node.start() }
        try await Nginx.with(upstreams: nodes.map(\.port)) { nginx in
            let lb = TestServer(port: nginx.port, databasePath: "", node: nil)
            let wsURL = "ws://127.0.0.1:\(nginx.port)/v1/ws"
            let (publishers, perPublisher) = (4, 150)
            let total = publishers * perPublisher
            let subscribed = Tally()
            let followers = (0..<6).map { _ in
                Task { try await Follower.follow("load:k", server: lb, url: wsURL, through: Int64(total)) { subscribed.add() } }
            }
            while subscribed.count < followers.count { try await Task.sleep(for: .milliseconds(20)) }
            let publishing = (0..<publishers).map { p in
                Task {
                    for i in 0..<perPublisher {
                        try await Self.publishUntilAcknowledged(
                            lb, channel: "load:k", body: #"{"data": {"p": \#(p), "i": \#(i)}, "idempotency_key": "p\#(p)-\#(i)"}"#
                        )
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(600))
            nodes[1].kill()
            try await Task.sleep(for: .seconds(1))
            try await nodes[1].start()
            for task in publishing { try await task.value }

            var resumes = 0
            for follower in followers {
                let run = try await follower.value
                #expect(run.offsets == Array(1...Int64(total)), "resumed \(run.resumes) times")
                #expect(run.unrecovered == 0)
                resumes += run.resumes
            }
            // The killed node's subscribers came back through another node.
            #expect(resumes > 0)
            // History is contiguous and holds each acknowledged message exactly once.
            let history = try await HTTP.with(lb) { http in try await http.get("/v1/channels/load:k/messages?limit=1000").json }
            let messages = history["messages"]?.arrayValue ?? []
            #expect(messages.map { $0["offset"]?.intValue } == (1...total).map { Int64($0) })
            let keys = messages.compactMap { m -> String? in
                guard let p = m["data"]?["p"]?.intValue, let i = m["data"]?["i"]?.intValue else { return nil }
                return "\(p)-\(i)"
            }
            #expect(Set(keys).count == total)
            #expect(keys.count == total)
        }
    }

    /// POSTs until a node acknowledges it (201, or 200 for a retry that had committed),
    /// through whatever fails meanwhile: a killed node, a refused connection, a 502 or 503.
    static func publishUntilAcknowledged(_ server: TestServer, channel: String, body: String) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let status = try? await HTTP.with(server) { http in try await http.post("/v1/channels/\(channel)/messages", body).status }
            if status == 200 || status == 201 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("never acknowledged: \(body)")
    }

    @Test("PostgreSQL stopped and started under open connections: 503 meanwhile, connections stay, delivery resumes without a restart")
    func databaseOutage() async throws {
        let database = try await PostgresServer.newDatabase()
        let postgres = try await PostgresServer.start()
        try await TestServer.with(database: database) { writer in
            try await TestServer.with(database: database) { reader in
                let subscriber = try await WSClient.connect(reader)
                _ = try await subscriber.command("subscribe", ["channel": "chat:outage"])
                try await HTTP.with(writer) { http in
                    for i in 1...5 { try await http.publish("chat:outage", .int(Int64(i))) }
                }
                #expect(try await subscriber.messages(5, channel: "chat:outage").map { $0["offset"] } == [1, 2, 3, 4, 5])

                try postgres.stop()
                try await HTTP.with(writer) { http in
                    let refused = try await http.post("/v1/channels/chat:outage/messages", #"{"data": "lost?"}"#)
                    #expect(refused.status == 503)
                    #expect(refused.json["code"] == "unavailable")
                    #expect(try await http.get("/readyz").status == 503)
                }
                let overWS = try await subscriber.command("publish", ["channel": "chat:outage", "data": "x"])
                #expect(overWS["error"]?["code"] == "unavailable")
                #expect(overWS["error"]?["temporary"] == true)
                // The connection itself is fine.
                #expect(try await subscriber.command("ping")["result"] == [:])

                try postgres.startServer()
                let deadline = ContinuousClock.now + .seconds(20)
                while ContinuousClock.now < deadline {
                    if (try? await HTTP.with(writer) { http in try await http.get("/readyz").status }) == 200 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                for i in 6...10 {
                    try await Self.publishUntilAcknowledged(writer, channel: "chat:outage", body: #"{"data": \#(i)}"#)
                }
                let after = try await subscriber.messages(5, channel: "chat:outage")
                #expect(after.map { $0["offset"] } == [6, 7, 8, 9, 10])
                #expect(after.map { $0["data"] } == [6, 7, 8, 9, 10])
                _ = await subscriber.close()
            }
        }
    }
}

/// A subscriber that reconnects through whatever happens and resumes with `since`,
/// recording every offset it was given.
enum Follower {
    struct Run: Sendable {
        var offsets: [Int64] = []
        var resumes = 0
        /// Resumes answered `recovered: false` (there should be none within history).
        var unrecovered = 0
    }

    static func follow(
        _ channel: String, server: TestServer, url: String, through last: Int64, subscribed: @Sendable () -> Void
    ) async throws -> Run {
        var run = Run()
        var position: JSONValue?
        var announced = false
        let deadline = ContinuousClock.now + .seconds(90)
        while run.offsets.last != last && ContinuousClock.now < deadline {
            do {
                let client = try await WSClient.connect(server, url: url)
                defer { Task { _ = await client.close() } }
                var fields: [String: JSONValue] = ["channel": .string(channel)]
                if let position {
                    fields["since"] = position
                    run.resumes += 1
                }
                let reply = try await client.command("subscribe", fields)
                guard let result = reply["result"] else { throw TestFailure("subscribe refused: \(reply)") }
                if position != nil && result["recovered"] != true { run.unrecovered += 1 }
                if position == nil { position = ["epoch": result["epoch"]!, "offset": result["offset"]!] }
                if !announced {
                    announced = true
                    subscribed()
                }
                while run.offsets.last != last, let frame = try await client.next(timeout: .seconds(5)) {
                    guard frame["type"] == "message", let offset = frame["offset"]?.intValue else { continue }
                    run.offsets.append(offset)
                    position = ["epoch": frame["epoch"]!, "offset": .int(offset)]
                }
            } catch {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        return run
    }
}
