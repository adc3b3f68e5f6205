import Foundation
import Testing
import SwitchboardCore
import SwitchboardServer

/// Socket.IO over a raw WebSocket, where the Swift tests can reach what the Python and
/// browser suites cannot: several nodes, the node's own metrics, and draining.
@Suite("Socket.IO")
struct SocketIOTests {
    /// An Engine.IO WebSocket to `server`, past the open packet.
    static func engine(_ server: TestServer, query: String = "") async throws -> WSClient {
        let client = WSClient(url: "ws://127.0.0.1:\(server.port)/socket.io/?EIO=4&transport=websocket\(query)", headers: [:])
        let open = try #require(try await client.nextText())
        #expect(open.hasPrefix(#"0{"sid":""#))
        #expect(open.contains(#""upgrades":[]"#))
        return client
    }

    /// The next Socket.IO packet that is not a ping.
    static func next(_ client: WSClient) async throws -> String {
        while true {
            guard let text = try await client.nextText() else { throw TestFailure("closed") }
            if text != "2" { return text }
        }
    }

    /// `42["channel",data,"offset"]` → (data, offset).
    static func event(_ packet: String) throws -> (channel: String, data: JSONValue, offset: String?) {
        guard packet.hasPrefix("42"), case .array(let args) = try JSONValue.parse(String(packet.dropFirst(2))) else {
            throw TestFailure("not an event: \(packet)")
        }
        return (args[0].stringValue ?? "", args.count > 1 ? args[1] : .null, args.count > 2 ? args[2].stringValue : nil)
    }

    @Test("recovery on another node: the pid and the last offset restore every channel, with the missed events in order")
    func recoveryAcrossNodes() async throws {
        try await TestCluster.with(nodes: 2, configure: { $0.socketIO = SocketIOSettings(channels: ["ticker"], recovery: true) }) { nodes in
            let first = try await Self.engine(nodes[0])
            first.sendText("40")
            let connected = try await Self.next(first)
            let answer = try JSONValue.parse(String(connected.dropFirst(2)))
            let pid = try #require(answer["pid"]?.stringValue)
            #expect(answer["sid"]?.stringValue != nil)
            try await HTTP.with(nodes[0]) { http in for i in 1...2 { try await http.publish("ticker", .int(Int64(i))) } }
            var offset = ""
            for i in 1...2 {
                let event = try Self.event(try await Self.next(first))
                #expect(event.channel == "ticker" && event.data == .int(Int64(i)))
                offset = try #require(event.offset)
            }
            _ = await first.close()
            try await HTTP.with(nodes[1]) { http in for i in 3...5 { try await http.publish("ticker", .int(Int64(i))) } }

            // On the other node, with what the client kept.
            let second = try await Self.engine(nodes[1])
            second.sendText("40" + JSONValue.object(["pid": .string(pid), "offset": .string(offset)]).serialized)
            for i in 3...5 {
                #expect(try Self.event(try await Self.next(second)).data == .int(Int64(i)))
            }
            let recovered = try JSONValue.parse(String(try await Self.next(second).dropFirst(2)))
            #expect(recovered["pid"]?.stringValue == pid)
            try await HTTP.with(nodes[0]) { http in try await http.publish("ticker", 6) }
            #expect(try Self.event(try await Self.next(second)).data == 6)
            _ = await second.close()
        }
    }

    @Test("a client that received nothing before it dropped is recovered from its pid")
    func recoveryWithoutEvents() async throws {
        try await TestServer.with(configure: { $0.socketIO = SocketIOSettings(channels: ["quiet"], recovery: true) }) { server in
            let first = try await Self.engine(server)
            first.sendText("40")
            let pid = try #require(try JSONValue.parse(String(try await Self.next(first).dropFirst(2)))["pid"]?.stringValue)
            _ = await first.close()
            try await HTTP.with(server) { http in try await http.publish("quiet", "missed") }
            let second = try await Self.engine(server)
            second.sendText("40" + JSONValue.object(["pid": .string(pid)]).serialized)
            #expect(try Self.event(try await Self.next(second)).data == "missed")
            #expect(try JSONValue.parse(String(try await Self.next(second).dropFirst(2)))["pid"]?.stringValue == pid)
            _ = await second.close()
        }
    }

    @Test("recovery of two channels: every replayed event's offset holds both, so a client dropped mid-replay recovers from it")
    func recoveryFromTheMiddleOfAReplay() async throws {
        try await TestServer.with(configure: { $0.socketIO = SocketIOSettings(channels: ["alpha", "beta"], recovery: true) }) { server in
            let first = try await Self.engine(server)
            first.sendText("40")
            let pid = try #require(try JSONValue.parse(String(try await Self.next(first).dropFirst(2)))["pid"]?.stringValue)
            _ = await first.close()
            try await HTTP.with(server) { http in
                for i in 1...3 { try await http.publish("alpha", .string("a\(i)")) }
                for i in 1...3 { try await http.publish("beta", .string("b\(i)")) }
            }
            // The replay: alpha's three, then beta's three, then the CONNECT answer.
            let second = try await Self.engine(server)
            second.sendText("40" + JSONValue.object(["pid": .string(pid)]).serialized)
            var replay: [(data: JSONValue, offset: String)] = []
            for _ in 1...6 {
                let event = try Self.event(try await Self.next(second))
                replay.append((event.data, try #require(event.offset)))
            }
            #expect(replay.map(\.data) == ["a1", "a2", "a3", "b1", "b2", "b3"])
            for event in replay {
                #expect(Set(PositionList.parse(event.offset).keys) == ["alpha", "beta"], "\(event.offset)")
            }
            _ = await second.close()
            // Dropped after alpha's second event: a3 and beta's three come again, and nothing else.
            let third = try await Self.engine(server)
            third.sendText("40" + JSONValue.object(["pid": .string(pid), "offset": .string(replay[1].offset)]).serialized)
            var again: [JSONValue] = []
            while true {
                let packet = try await Self.next(third)
                if packet.hasPrefix("40") {
                    #expect(try JSONValue.parse(String(packet.dropFirst(2)))["pid"]?.stringValue == pid, "recovered")
                    break
                }
                again.append(try Self.event(packet).data)
            }
            #expect(again == ["a3", "b1", "b2", "b3"])
            _ = await third.close()
        }
    }

    @Test("a position too old (or from another database) is not recovered: a new pid, and live events from now")
    func recoveryRefused() async throws {
        try await TestServer.with(configure: { $0.socketIO = SocketIOSettings(channels: ["ticker"], recovery: true) }) { server in
            let client = try await Self.engine(server)
            client.sendText(#"40{"pid":"ticker@zzzzzzzz:3","offset":"ticker@zzzzzzzz:3"}"#)
            let answer = try JSONValue.parse(String(try await Self.next(client).dropFirst(2)))
            #expect(answer["pid"]?.stringValue != "ticker@zzzzzzzz:3")
            try await HTTP.with(server) { http in try await http.publish("ticker", "live") }
            #expect(try Self.event(try await Self.next(client)).data == "live")
            _ = await client.close()
        }
    }

    @Test("Socket.IO connections are counted in the metrics under their transport")
    func metrics() async throws {
        try await TestServer.with { server in
            let client = try await Self.engine(server)
            client.sendText("40")
            #expect(try await Self.next(client).hasPrefix("40{"))
            let metrics = try await HTTP.with(server) { http in try await http.get("/metrics").text }
            #expect(metrics.contains(#"switchboard_connections{transport="socketio"} 1"#))
            _ = await client.close()
        }
    }
}
