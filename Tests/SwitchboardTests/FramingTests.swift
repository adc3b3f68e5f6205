import CompressNIO
import Foundation
import NIOCore
import Testing
import SwitchboardCore

/// RFC 6455 framing and RFC 7692 permessage-deflate, probed with a client on a plain socket
/// that sends what no library would (the Autobahn suite's kinds of cases): each breach is
/// answered with the close code the RFC gives it, and what is well-formed, however it is
/// cut into frames and packets, is read.
@Suite("WebSocket framing (RFC 6455, RFC 7692)")
struct FramingTests {
    static let text: UInt8 = 1, binary: UInt8 = 2, continuation: UInt8 = 0, close: UInt8 = 8, ping: UInt8 = 9

    /// Connects and reads the welcome.
    static func connect(_ server: TestServer, headers: [String: String] = [:]) throws -> RawWebSocket {
        let client = try RawWebSocket(port: server.port, headers: headers)
        guard client.readNonPing()?.json?["type"]?.stringValue == "welcome" else { throw TestFailure("no welcome") }
        return client
    }

    /// The close frame the server answers `bytes` with, then the end of the connection.
    static func closeCode(after bytes: [UInt8], _ server: TestServer) -> UInt16? {
        guard let client = try? connect(server) else { return nil }
        client.send(bytes: bytes)
        let frame = client.readNonPing()
        #expect(client.closedByServer(), "the connection must end after the close")
        return frame?.closeCode
    }

    static func closeFrame(code: UInt16?, reason: [UInt8] = []) -> [UInt8] {
        let payload = code.map { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } ?? []
        return RawWebSocket.frameBytes(opcode: close, payload: payload + reason)
    }

    @Test("protocol errors close with 1002: unmasked frame, reserved bits, unknown opcode, bad control frames, stray continuation")
    func protocolErrors() async throws {
        try await TestServer.with(configure: TestServer.manyClients) { server in
            let ping = Array(#"{"id":1,"op":"ping"}"#.utf8)
            let cases: [(String, [UInt8])] = [
                ("unmasked text frame", RawWebSocket.frameBytes(opcode: Self.text, payload: ping, masked: false)),
                ("RSV2 set", RawWebSocket.frameBytes(opcode: Self.text, payload: ping, first: 0x80 | 0x20 | 1)),
                ("RSV1 without permessage-deflate", RawWebSocket.frameBytes(opcode: Self.text, payload: ping, rsv1: true)),
                ("opcode 3", RawWebSocket.frameBytes(opcode: 3, payload: ping)),
                ("opcode 11", RawWebSocket.frameBytes(opcode: 11, payload: [])),
                ("fragmented ping", RawWebSocket.frameBytes(opcode: Self.ping, payload: [1], fin: false)),
                ("ping over 125 bytes", RawWebSocket.frameBytes(opcode: Self.ping, payload: Array(repeating: 7, count: 126))),
                ("continuation without a message", RawWebSocket.frameBytes(opcode: Self.continuation, payload: ping)),
                (
                    "a new message inside a fragmented one",
                    RawWebSocket.frameBytes(opcode: Self.text, payload: [0x7B], fin: false) + RawWebSocket.frameBytes(opcode: Self.text, payload: ping)
                ),
                ("64-bit length with its top bit set", [0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]),
            ]
            for (name, bytes) in cases {
                #expect(Self.closeCode(after: bytes, server) == 1002, "\(name)")
            }
        }
    }

    @Test("close frames: a valid code is echoed; 999, 1005, 1006, 1016, 2999 or a one-byte payload is 1002; a reason that is not UTF-8 is 1007")
    func closeFrames() async throws {
        try await TestServer.with(configure: TestServer.manyClients) { server in
            #expect(Self.closeCode(after: Self.closeFrame(code: 1000, reason: Array("bye".utf8)), server) == 1000)
            #expect(Self.closeCode(after: Self.closeFrame(code: 4000), server) == 4000)
            #expect(Self.closeCode(after: Self.closeFrame(code: 3000), server) == 3000)
            #expect(Self.closeCode(after: Self.closeFrame(code: nil), server) == 1000)
            for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
                #expect(Self.closeCode(after: Self.closeFrame(code: code), server) == 1002, "code \(code)")
            }
            #expect(Self.closeCode(after: RawWebSocket.frameBytes(opcode: Self.close, payload: [3]), server) == 1002)
            #expect(Self.closeCode(after: Self.closeFrame(code: 1000, reason: [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xFF]), server) == 1007)
        }
    }

    @Test("text that is not UTF-8 is 1007, whole or across fragments; UTF-8 cut between fragments is read")
    func utf8() async throws {
        try await TestServer.with(configure: TestServer.manyClients) { server in
            #expect(Self.closeCode(after: RawWebSocket.frameBytes(opcode: Self.text, payload: [0x22, 0xC0, 0xAF, 0x22]), server) == 1007)
            let split = RawWebSocket.frameBytes(opcode: Self.text, payload: [0x22, 0xF0, 0x9F], fin: false)
                + RawWebSocket.frameBytes(opcode: Self.continuation, payload: [0x22])
            #expect(Self.closeCode(after: split, server) == 1007)

            // "é" (C3 A9) cut between two fragments, in a command the server answers.
            let client = try Self.connect(server)
            let command = Array(#"{"id":5,"op":"publish","channel":"nope:x","data":"é"}"#.utf8)
            let cut = command.firstIndex(of: 0xC3)! + 1
            client.send(bytes: RawWebSocket.frameBytes(opcode: Self.text, payload: Array(command[..<cut]), fin: false)
                + RawWebSocket.frameBytes(opcode: Self.continuation, payload: Array(command[cut...])))
            #expect(client.readNonPing()?.json?["id"]?.intValue == 5)
        }
    }

    @Test("frames over the size limit are 1009, whole or once joined; at the limit they are read")
    func sizeLimit() async throws {
        try await TestServer.with(configure: { TestServer.manyClients(&$0); $0.limits.messageBytes = 1024 }) { server in
            let big = Array(repeating: UInt8(0x20), count: 1025)
            #expect(Self.closeCode(after: RawWebSocket.frameBytes(opcode: Self.text, payload: big), server) == 1009)
            let halves = RawWebSocket.frameBytes(opcode: Self.text, payload: Array(big[..<600]), fin: false)
                + RawWebSocket.frameBytes(opcode: Self.continuation, payload: Array(big[600...]))
            #expect(Self.closeCode(after: halves, server) == 1009)
            // A length header that announces too much is refused before the payload comes.
            #expect(Self.closeCode(after: [0x81, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0], server) == 1009)

            let client = try Self.connect(server)
            let command = #"{"id":9,"op":"ping"}"#
            let padded = command + String(repeating: " ", count: 1024 - command.utf8.count)
            client.sendFrame(opcode: Self.text, payload: Array(padded.utf8))
            #expect(client.readNonPing()?.json?["id"]?.intValue == 9)
        }
    }

    @Test("fragments with pings between them, frames cut at every byte, many frames in one packet: all read, answered in order")
    func fragmentationAndPackets() async throws {
        try await TestServer.with(configure: TestServer.manyClients) { server in
            let client = try Self.connect(server)
            let command = Array(#"{"id":1,"op":"ping"}"#.utf8)
            client.send(bytes: RawWebSocket.frameBytes(opcode: Self.text, payload: Array(command[..<5]), fin: false)
                + RawWebSocket.frameBytes(opcode: Self.ping, payload: Array("hi".utf8))
                + RawWebSocket.frameBytes(opcode: Self.continuation, payload: Array(command[5..<12]), fin: false)
                + RawWebSocket.frameBytes(opcode: Self.continuation, payload: Array(command[12...])))
            let pong = client.readNonPing()
            #expect(pong?.opcode == 0xA && pong?.text == "hi", "a ping inside a fragmented message is answered at once")
            #expect(client.readNonPing()?.json?["id"]?.intValue == 1)

            // One byte per packet, through a 16-bit length header.
            let long = #"{"id":2,"op":"ping","pad":""# + String(repeating: "x", count: 200) + #""}"#
            for byte in RawWebSocket.frameBytes(opcode: Self.text, payload: Array(long.utf8)) {
                client.send(bytes: [byte])
                try await Task.sleep(for: .microseconds(200))
            }
            #expect(client.readNonPing()?.json?["id"]?.intValue == 2)

            // Fifty commands in one write.
            let many = (3..<53).flatMap { RawWebSocket.frameBytes(opcode: Self.text, payload: Array(#"{"id":\#($0),"op":"ping"}"#.utf8)) }
            client.send(bytes: many)
            for id in 3..<53 {
                #expect(client.readNonPing()?.json?["id"]?.intValue == Int64(id))
            }
        }
    }

    @Test("permessage-deflate: negotiated without context takeover; large messages arrive compressed and inflate to what others get; small ones plain")
    func deflateDelivery() async throws {
        try await TestServer.with(configure: TestServer.manyClients) { server in
            let offer = ["Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"]
            let compressed = try Self.connect(server, headers: offer)
            #expect(compressed.responseHeader("Sec-WebSocket-Extensions") == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
            let plain = try Self.connect(server)
            #expect(plain.responseHeader("Sec-WebSocket-Extensions") == nil)
            // An offer that limits the server's window is declined: no compression.
            let limited = try Self.connect(server, headers: ["Sec-WebSocket-Extensions": "permessage-deflate; server_max_window_bits=10"])
            #expect(limited.responseHeader("Sec-WebSocket-Extensions") == nil)

            for client in [compressed, plain] {
                client.sendText(#"{"id":1,"op":"subscribe","channel":"prices:big"}"#)
                #expect(client.readNonPing()?.json?["id"]?.intValue == 1)
            }
            let rows = JSONValue.array((0..<200).map { .object(["symbol": .string("SYM\($0 % 10)"), "price": .double(Double($0) + 0.5), "venue": "XNAS"]) })
            try await HTTP.with(server) { http in
                try await http.publish("prices:big", rows)
                try await http.publish("prices:big", "small")
            }

            let big = try #require(compressed.readNonPing())
            #expect(big.rsv1)
            let inflated = try Self.inflate(big.payload)
            let reference = try #require(plain.readNonPing())
            #expect(!reference.rsv1)
            #expect(inflated == reference.payload)
            #expect(big.payload.count * 5 < reference.payload.count, "200 rows of JSON shrink at least 5 times: \(big.payload.count) of \(reference.payload.count)")

            let small = try #require(compressed.readNonPing())
            #expect(!small.rsv1)
            #expect(small.json?["data"]?.stringValue == "small")
        }
    }

    @Test("compression: false declines permessage-deflate, and large messages go plain")
    func compressionOff() async throws {
        try await TestServer.with(configure: { TestServer.manyClients(&$0); $0.compression = false }) { server in
            let client = try Self.connect(server, headers: ["Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"])
            #expect(client.responseHeader("Sec-WebSocket-Extensions") == nil)
            client.sendText(#"{"id":1,"op":"subscribe","channel":"prices:big"}"#)
            #expect(client.readNonPing()?.json?["id"]?.intValue == 1)
            let big = String(repeating: "a quote board ", count: 100)
            try await HTTP.with(server) { http in try await http.publish("prices:big", .string(big)) }
            let frame = try #require(client.readNonPing())
            #expect(!frame.rsv1)
            #expect(frame.json?["data"]?.stringValue == big)
        }
    }

    @Test("permessage-deflate from the client: a compressed command is read; one that inflates past the limit is 1009, one that does not inflate 1007")
    func deflateFromClient() async throws {
        try await TestServer.with(configure: { TestServer.manyClients(&$0); $0.limits.messageBytes = 4096 }) { server in
            let offer = ["Sec-WebSocket-Extensions": "permessage-deflate"]
            let client = try Self.connect(server, headers: offer)
            let command = #"{"id":7,"op":"ping","pad":""# + String(repeating: "ab", count: 500) + #""}"#
            client.sendFrame(opcode: Self.text, payload: try Self.deflate(Array(command.utf8)), rsv1: true)
            #expect(client.readNonPing()?.json?["id"]?.intValue == 7)

            let bomb = try Self.deflate(Array(repeating: UInt8(0x20), count: 100_000))
            #expect(bomb.count < 4096)
            let bombed = try RawWebSocket(port: server.port, headers: offer)
            _ = bombed.readNonPing()
            bombed.sendFrame(opcode: Self.text, payload: bomb, rsv1: true)
            #expect(bombed.readNonPing()?.closeCode == 1009)

            let garbage = try RawWebSocket(port: server.port, headers: offer)
            _ = garbage.readNonPing()
            garbage.sendFrame(opcode: Self.text, payload: [0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x12], rsv1: true)
            #expect(garbage.readNonPing()?.closeCode == 1007)
        }
    }

    @Test("a handshake without Sec-WebSocket-Key or with another version is refused with 400")
    func badHandshake() async throws {
        try await TestServer.with(configure: TestServer.manyClients) { server in
            for headers in [["Sec-WebSocket-Version": "8"], ["Sec-WebSocket-Key": ""]] {
                var request = "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                if headers["Sec-WebSocket-Key"] == nil { request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" }
                request += "Sec-WebSocket-Version: \(headers["Sec-WebSocket-Version"] ?? "13")\r\n\r\n"
                let head = try Self.exchange(port: server.port, request: request)
                #expect(head.hasPrefix("HTTP/1.1 400"), "\(headers): \(head.prefix(40))")
            }
        }
    }

    @Test("frames sent in the same write as the handshake are read; a request split anywhere is read whole")
    func firstBytes() async throws {
        try await TestServer.with(configure: TestServer.manyClients) { server in
            let subscribe = RawWebSocket.frameBytes(opcode: Self.text, payload: Array(#"{"op":"subscribe","id":1,"channel":"early"}"#.utf8))
            let client = try RawWebSocket(port: server.port, early: subscribe)
            #expect(client.readNonPing()?.json?["type"] == "welcome")
            let reply = client.readNonPing()?.json
            #expect(reply?["id"]?.intValue == 1 && reply?["result"]?["channel"] == "early", "\(String(describing: reply))")
            // A plain request whose head arrives in pieces reaches the router.
            let fd = try RawSocket.connect(port: server.port)
            defer { RawSocket.close(fd) }
            for piece in ["GE", "T /healthz HTTP/1.1\r", "\nHost: 127.0.0.1\r\nConnection: close\r\n", "\r\n"] {
                RawSocket.send(fd, piece)
                try await Task.sleep(for: .milliseconds(20))
            }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            #expect(poll(&poller, 1, 10_000) > 0)
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            #expect(String(decoding: buffer[0..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        }
    }

    @Test("a first request that is not HTTP is answered 400 and closed; the server goes on")
    func garbageFirstRequest() async throws {
        try await TestServer.with(configure: TestServer.manyClients) { server in
            for request in ["HELLO\r\n\r\n", "GET / HTTP/1.1\r\nBad Header\r\n\r\n", "GET / HTTP/9.9\r\n\r\n"] {
                let head = try Self.exchange(port: server.port, request: request)
                #expect(head.hasPrefix("HTTP/1.1 400"), "\(request.debugDescription): \(head.prefix(40))")
            }
            let client = try RawWebSocket(port: server.port)
            #expect(client.readNonPing()?.json?["type"] == "welcome")
        }
    }

    /// The start of the answer to a raw HTTP request.
    static func exchange(port: Int, request: String) throws -> String {
        let fd = try RawSocket.connect(port: port)
        defer { RawSocket.close(fd) }
        RawSocket.send(fd, request)
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 10_000) > 0 else { throw TestFailure("no answer") }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return String(decoding: buffer[0..<max(n, 0)], as: UTF8.self)
    }

    static func deflate(_ bytes: [UInt8]) throws -> [UInt8] {
        let compressor = try ZlibCompressor(algorithm: .deflate)
        var input = ByteBuffer(bytes: bytes)
        var output = ByteBuffer()
        output.reserveCapacity(compressor.maxSize(from: input))
        try compressor.deflate(from: &input, to: &output, flush: .sync)
        return Array(output.readableBytesView.dropLast(4))
    }

    static func inflate(_ bytes: [UInt8]) throws -> [UInt8] {
        let decompressor = try ZlibDecompressor(algorithm: .deflate, windowSize: 15)
        var input = ByteBuffer(bytes: bytes + [0, 0, 0xFF, 0xFF])
        var output = ByteBuffer()
        output.reserveCapacity(bytes.count * 50 + 1024)
        try decompressor.inflate(from: &input, to: &output)
        return Array(output.readableBytesView)
    }
}
