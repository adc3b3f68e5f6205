import Foundation
import Testing
import SwitchboardCore

/// Ordering, resume and the catch-up/live boundary: the promises that nothing is lost,
/// repeated or reordered.
@Suite("Delivery and resume")
struct DeliveryTests {
    @Test("1,000 rapid publishes reach 3 subscribers with consecutive offsets")
    func rapidPublishes() async throws {
        try await TestServer.with { server in
            let subscribers = try await (0..<3).asyncMap { _ in try await WSClient.connect(server) }
            for s in subscribers { _ = try await s.command("subscribe", ["channel": "ticker"]) }
            // Four publishers at once, 250 each.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for p in 0..<4 {
                    group.addTask {
                        try await HTTP.with(server) { http in
                            for i in 0..<250 { try await http.publish("ticker", ["p": .int(Int64(p)), "i": .int(Int64(i))]) }
                        }
                    }
                }
                try await group.waitForAll()
            }
            for s in subscribers {
                let messages = try await s.messages(1000, channel: "ticker")
                #expect(messages.map { $0["offset"]?.intValue } == (1...1000).map { Int64($0) })
                // Each publisher's own messages keep their order.
                for p in 0..<4 {
                    let mine = messages.compactMap { $0["data"]?["p"] == .int(Int64(p)) ? $0["data"]?["i"]?.intValue : nil }
                    #expect(mine == (0..<250).map { Int64($0) })
                }
                _ = await s.close()
            }
        }
    }

    @Test("resume: miss N messages, resubscribe with since, get exactly those N then live ones")
    func resume() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let first = try await WSClient.connect(server)
                _ = try await first.command("subscribe", ["channel": "chat:resume"])
                try await http.publish("chat:resume", "a")
                let seen = try await first.messages(1)
                let epoch = try #require(seen[0]["epoch"])
                _ = await first.close()

                for i in 1...25 { try await http.publish("chat:resume", .int(Int64(i))) }

                let second = try await WSClient.connect(server)
                let reply = try await second.command("subscribe", ["channel": "chat:resume", "since": ["epoch": epoch, "offset": 1]])
                #expect(reply["result"]?["recovered"] == true)
                #expect(reply["result"]?["offset"] == 26)
                let missed = try await second.messages(25)
                #expect(missed.map { $0["offset"]?.intValue } == (2...26).map { Int64($0) })
                #expect(missed.map { $0["data"] } == (1...25).map { .int(Int64($0)) })
                try await http.publish("chat:resume", "live")
                let live = try await second.messages(1)
                #expect(live[0]["offset"] == 27)
                #expect(live[0]["data"] == "live")
                _ = await second.close()
            }
        }
    }

    @Test("an old or foreign position gives recovered: false and then live messages only")
    func unrecoverable() async throws {
        try await TestServer.with(configure: { config in
            config.namespaces = Namespaces(policies: ["short": NamespacePolicy(historySize: 5)])
        }) { server in
            try await HTTP.with(server) { http in
                for i in 1...20 { try await http.publish("short:x", .int(Int64(i))) }
                let epoch = try #require(try await http.get("/v1/channels/short:x/messages").json["epoch"])
                let client = try await WSClient.connect(server)
                let old = try await client.command("subscribe", ["channel": "short:x", "since": ["epoch": epoch, "offset": 3]])
                #expect(old["result"]?["recovered"] == false)
                #expect(old["result"]?["offset"] == 20)
                _ = try await client.command("unsubscribe", ["channel": "short:x"])

                let foreign = try await client.command("subscribe", ["channel": "short:x", "since": ["epoch": "elsewhere", "offset": 19]])
                #expect(foreign["result"]?["recovered"] == false)
                #expect(foreign["result"]?["epoch"] == epoch)
                try await http.publish("short:x", "live")
                let next = try await client.messages(1)
                #expect(next[0]["offset"] == 21)

                let current = try await client.command("subscribe", ["channel": "short:y", "since": ["epoch": epoch, "offset": 0]])
                #expect(current["result"]?["recovered"] == true)
                let future = try await client.command("subscribe", ["channel": "chat:z", "since": ["epoch": epoch, "offset": 5]])
                #expect(future["result"]?["recovered"] == false)
                _ = await client.close()
            }
        }
    }

    @Test("catch-up meets live with no gap and no duplicate while publishing never stops")
    func catchUpBoundaryUnderLoad() async throws {
        try await TestServer.with { server in
            let total = 600
            let publisher = Task {
                try await HTTP.with(server) { http in
                    for i in 1...total { try await http.publish("chat:race", .int(Int64(i))) }
                }
            }
            // Clients join at different moments, each resuming from a position seen mid-stream.
            let results = try await HTTP.with(server) { http in
                var results: [(since: Int64, offsets: [Int64])] = []
                for _ in 0..<8 {
                    try await Task.sleep(for: .milliseconds(40))
                    let page = try await http.get("/v1/channels/chat:race/messages?limit=1")
                    let since = page.json["offset"]?.intValue ?? 0
                    let epoch = page.json["epoch"] ?? .null
                    let client = try await WSClient.connect(server)
                    let reply = try await client.command("subscribe", ["channel": "chat:race", "since": ["epoch": epoch, "offset": .int(since)]])
                    #expect(reply["result"]?["recovered"] == true)
                    let expected = total - Int(since)
                    let messages = try await client.messages(expected, channel: "chat:race", timeout: .seconds(30))
                    results.append((since, messages.compactMap { $0["offset"]?.intValue }))
                    _ = await client.close()
                }
                return results
            }
            try await publisher.value
            for result in results {
                let expected = result.since < Int64(total) ? Array((result.since + 1)...Int64(total)) : []
                #expect(result.offsets == expected, "joined after \(result.since)")
            }
        }
    }

    @Test("snapshot then stream: list at offset N, subscribe since N while writes go on; each change arrives once")
    func snapshotThenStream() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                for i in 0..<20 { try await http.put("/v1/collections/items/i\(i)", #"{"v": 0}"#) }
                let writer = Task {
                    try await HTTP.with(server) { w in
                        for round in 1...10 {
                            for i in 0..<20 { try await w.put("/v1/collections/items/i\(i)", #"{"v": \#(round)}"#) }
                        }
                    }
                }
                try await Task.sleep(for: .milliseconds(50))
                let snapshot = try await http.get("/v1/collections/items?limit=1000")
                let offset = try #require(snapshot.json["offset"]?.intValue)
                var state: [String: JSONValue] = [:]
                for item in snapshot.json["items"]?.arrayValue ?? [] { state[item["id"]!.stringValue!] = item["data"] }
                let client = try await WSClient.connect(server)
                let reply = try await client.command(
                    "subscribe", ["channel": "collection:items", "since": ["epoch": snapshot.json["epoch"]!, "offset": .int(offset)]]
                )
                #expect(reply["result"]?["recovered"] == true)
                try await writer.value
                let total: Int64 = 20 + 200
                let events = try await client.messages(Int(total - offset), channel: "collection:items")
                #expect(events.map { $0["offset"]?.intValue } == ((offset + 1)...total).map { $0 })
                for event in events {
                    let record = event["data"]!["record"]!
                    state[record["id"]!.stringValue!] = record["data"]
                }
                // Applying the stream to the snapshot gives exactly the final state.
                #expect(state.count == 20)
                #expect(state.values.allSatisfy { $0 == ["v": 10] })
                _ = await client.close()
            }
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
