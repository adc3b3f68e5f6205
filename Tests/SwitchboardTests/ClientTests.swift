import Foundation
import Testing
import SwitchboardClient
import SwitchboardCore
import SwitchboardServer
import Synchronization

/// `SwitchboardClient` against a real server: its promises (resume by offset, never twice,
/// reconnect by close code, token renewal, live collections) under what breaks them.
@Suite("Swift client")
struct ClientTests {
    static func client(_ url: String, token: (@Sendable () async throws -> String?)? = nil, configure: (inout ClientConfiguration) -> Void = { _ in }) -> SwitchboardClient {
        var configuration = ClientConfiguration()
        configuration.backoff = Backoff(base: .milliseconds(50), maximum: .milliseconds(500))
        configuration.logger.logLevel = .critical
        configure(&configuration)
        return SwitchboardClient(url: URL(string: url)!, token: token, configuration: configuration)
    }

    /// Reads `subscription` until it has given offset `last`; returns every message offset seen.
    static func collect(_ subscription: Subscription, through last: Int64, timeout: Duration = .seconds(60)) async throws -> [Int64] {
        try await withThrowingTaskGroup(of: [Int64].self) { group in
            group.addTask {
                var offsets: [Int64] = []
                for try await event in subscription {
                    guard case .message(let message) = event else { continue }
                    offsets.append(message.position.offset)
                    if message.position.offset >= last { break }
                }
                return offsets
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TestFailure("timed out collecting through \(last)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    @Test("kill -9 and a restart on the same file while 1,000 messages are published: the subscriber's run is gap-free and duplicate-free")
    func killAndRestart() async throws {
        let path = TestServer.temporaryDatabase()
        let node = try NodeProcess(database: "sqlite:\(path)", config: "namespaces: {\"\": {anonymous: true, history_size: 5000}}\n")
        try await node.start()
        let client = Self.client(node.baseURL)
        defer { Task { await client.disconnect() } }
        let subscription = try await client.subscribe("ticks")
        let server = TestServer(port: node.port, databasePath: path, node: nil)
        let publisher = Task {
            for i in 1...1000 {
                try await ClusterTests.publishUntilAcknowledged(server, channel: "ticks", body: #"{"data": \#(i), "idempotency_key": "t\#(i)"}"#)
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        node.kill()
        try await Task.sleep(for: .milliseconds(300))
        try await node.start()
        try await publisher.value
        let offsets = try await Self.collect(subscription, through: 1000)
        #expect(offsets == Array(1...1000))
        node.kill()
    }

    @Test("a consumer too slow for the server is closed with 4100, comes back by itself and resumes: nothing lost or repeated")
    func slowConsumer() async throws {
        try await TestServer.with(configure: {
            $0.limits.queueBytes = 262_144
            $0.namespaces = Namespaces(policies: ["": NamespacePolicy(anonymous: true, historySize: 10_000)])
        }) { server in
            let client = Self.client(server.baseURL, configure: { $0.subscriptionBuffer = 8 })
            let reconnects = Tally()
            let watcher = Task {
                for await state in client.states { if case .reconnecting = state { reconnects.add() } }
            }
            let subscription = try await client.subscribe("flood")
            // 24 MB: more than the kernel's socket buffers hold on loopback.
            let payload = String(repeating: "x", count: 60_000)
            try await HTTP.with(server) { http in
                for i in 1...400 { try await http.publish("flood", ["i": .int(Int64(i)), "p": .string(payload)]) }
            }
            // Slow at first: the socket backs up and the server gives up on it.
            var offsets: [Int64] = []
            for try await event in subscription {
                guard case .message(let message) = event else { continue }
                offsets.append(message.position.offset)
                if offsets.count < 20 { try await Task.sleep(for: .milliseconds(100)) }
                if message.position.offset == 400 { break }
            }
            #expect(offsets == Array(1...400))
            let metrics = try await HTTP.with(server) { http in try await http.get("/metrics").text }
            #expect(!metrics.contains("switchboard_slow_consumer_closes_total 0"))
            #expect(reconnects.count >= 1)
            watcher.cancel()
            await client.disconnect()
        }
    }

    @Test("a token that expires (4101) is renewed through the provider, and the subscription goes on")
    func expiredToken() async throws {
        try await TestServer.with(configure: SecurityTests.secured) { server in
            let minted = Tally()
            let client = Self.client(server.baseURL, token: {
                minted.add()
                return try await Tokens.user("ann", channels: ["chat:*"], ttl: 2)
            }) { $0.refreshTokens = false }
            let subscription = try await client.subscribe("chat:renew")
            let publisher = Task {
                try await HTTP.with(server) { http in
                    for i in 1...40 {
                        _ = try await http.post("/v1/channels/chat:renew/messages", #"{"data": \#(i)}"#, headers: SecurityTests.key)
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
            }
            let offsets = try await Self.collect(subscription, through: 40, timeout: .seconds(30))
            try await publisher.value
            #expect(offsets == Array(1...40))
            #expect(minted.count >= 2)  // Expired (4101) at least once, and asked for another.
            await client.disconnect()
        }
    }

    @Test("with refresh on, a token is renewed before it expires over the open connection: no reconnect")
    func refreshBeforeExpiry() async throws {
        try await TestServer.with(configure: SecurityTests.secured) { server in
            let minted = Tally()
            let client = Self.client(server.baseURL, token: {
                minted.add()
                return try await Tokens.user("ann", channels: ["chat:*"], ttl: 7)
            })
            let reconnects = Tally()
            let watcher = Task { for await state in client.states { if case .reconnecting = state { reconnects.add() } } }
            let subscription = try await client.subscribe("chat:refresh")
            try await Task.sleep(for: .seconds(9))
            try await HTTP.with(server) { http in
                _ = try await http.post("/v1/channels/chat:refresh/messages", #"{"data": "after"}"#, headers: SecurityTests.key)
            }
            #expect(try await Self.collect(subscription, through: 1, timeout: .seconds(5)) == [1])
            #expect(minted.count >= 2)
            #expect(reconnects.count == 0)
            watcher.cancel()
            await client.disconnect()
        }
    }

    @Test("a live collection equals the REST state after 500 concurrent writes from several tasks")
    func liveCollection() async throws {
        struct Stock: Decodable, Sendable, Equatable { var price: Int }
        try await TestServer.with { server in
            let client = Self.client(server.baseURL)
            let latest = Latest<[CollectionItem<Stock>]>()
            let follower = Task {
                for try await items in client.collection("stocks", as: Stock.self).live() { latest.set(items) }
            }
            try await Task.sleep(for: .milliseconds(200))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<5 {
                    group.addTask {
                        try await HTTP.with(server) { http in
                            for i in 0..<100 {
                                let id = "S\((task * 7 + i) % 30)"
                                if i % 13 == 12 {
                                    _ = try await http.delete("/v1/collections/stocks/\(id)")
                                } else {
                                    _ = try await http.put("/v1/collections/stocks/\(id)", #"{"price": \#(task * 1000 + i)}"#)
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let rest = try await HTTP.with(server) { http in try await http.get("/v1/collections/stocks?limit=1000").json }
            let expected = (rest["items"]?.arrayValue ?? []).map { ($0["id"]!.stringValue!, $0["version"]!.intValue!, Int($0["data"]!["price"]!.intValue!)) }
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                let items = latest.value?.map { ($0.id, $0.version, $0.value.price) } ?? []
                if items.elementsEqual(expected, by: ==) { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let items = latest.value?.map { ($0.id, $0.version, $0.value.price) } ?? []
            #expect(items.elementsEqual(expected, by: ==), "live \(items.count) records, REST \(expected.count)")
            follower.cancel()
            await client.disconnect()
        }
    }

    @Test("50 tasks publishing and subscribing at once through one client")
    func concurrentUse() async throws {
        try await TestServer.with { server in
            let client = Self.client(server.baseURL)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<50 {
                    group.addTask {
                        let channel = "chat:task\(task)"
                        let subscription = try await client.subscribe(channel)
                        for i in 1...10 { try await client.publish(channel, ["task": task, "i": i]) }
                        #expect(try await Self.collect(subscription, through: 10) == Array(1...10))
                        subscription.cancel()
                    }
                }
                try await group.waitForAll()
            }
            await client.disconnect()
        }
    }

    @Test("a position from another history is a reset, then messages from there; a refused subscribe throws")
    func resetAndRefusal() async throws {
        try await TestServer.with(configure: SecurityTests.secured) { server in
            let client = Self.client(server.baseURL, token: { try await Tokens.user("ann", channels: ["chat:*"]) })
            let subscription = try await client.subscribe("chat:r", since: Position(epoch: "zzzzzzzz", offset: 5))
            try await HTTP.with(server) { http in
                _ = try await http.post("/v1/channels/chat:r/messages", #"{"data": 1}"#, headers: SecurityTests.key)
            }
            var events: [ChannelEvent] = []
            for try await event in subscription {
                events.append(event)
                if events.count == 2 { break }
            }
            guard case .reset(let position) = events.first else { throw TestFailure("no reset first: \(events)") }
            #expect(position.offset == 0)
            guard case .message(let message) = events.last else { throw TestFailure("no message after the reset") }
            #expect(message.position.offset == 1 && message.data == 1)
            await #expect(throws: SwitchboardClientError.self) { _ = try await client.subscribe("private:nope") }
            await #expect(throws: SwitchboardClientError.self) { try await client.publish("collection:x", json: 1) }
            await client.disconnect()
        }
    }
}

/// The last value a task saw.
final class Latest<Value: Sendable>: Sendable {
    private let box = Mutex<Value?>(nil)
    func set(_ value: Value) { box.withLock { $0 = value } }
    var value: Value? { box.withLock { $0 } }
}
