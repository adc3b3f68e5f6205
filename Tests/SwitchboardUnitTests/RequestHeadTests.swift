import Testing
@_spi(Benchmarks) @testable import SwitchboardServer

/// The first request's head, read by the server's own parser before any HTTP pipeline
/// exists: pure, checked without sockets. A WebSocket handshake is answered from it.
@Suite("First request head and WebSocket handshake")
struct RequestHeadTests {
    static func parse(_ text: String, limit: Int = 1024) -> RequestHead.Parsed {
        Array(text.utf8).withUnsafeBytes { RequestHead.parse($0, limit: limit) }
    }

    static let handshake = "GET /v1/ws?token=abc HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For:  10.0.0.2 \r\n\r\n"

    @Test("a handshake is read whole, with its length; fields are case-insensitive and trimmed")
    func handshake() throws {
        guard case .head(let head, let length) = Self.parse(Self.handshake + "\u{81}\u{80}") else {
            Issue.record("not parsed"); return
        }
        #expect(length == Self.handshake.utf8.count)
        #expect(head.method == "GET" && head.target == "/v1/ws?token=abc" && head.version == "HTTP/1.1")
        #expect(head.first("host") == "example.com")
        #expect(head.values("x-forwarded-for") == ["10.0.0.1", "10.0.0.2"])
        #expect(head.asksForWebSocket)
        #expect(head.lists("connection", token: "upgrade"))
        #expect(try WebSocketHandshake.key(head).get() == "dGhlIHNhbXBsZSBub25jZQ==")
        let request = WebSocketHandshake.request(head)
        #expect(request.path == "/v1/ws" && request.credential == "abc" && request.forwardedFor == ["10.0.0.1", "10.0.0.2"])
    }

    @Test("every prefix of a head is incomplete; bare LF line ends and leading empty lines are accepted")
    func prefixes() {
        let bytes = Array(Self.handshake.utf8)
        for end in 0..<bytes.count {
            let parsed = bytes[..<end].withUnsafeBytes { RequestHead.parse($0, limit: 1024) }
            #expect(parsed == .incomplete, "prefix of \(end) bytes")
        }
        guard case .head(let head, _) = Self.parse("\r\nGET / HTTP/1.0\nHost: a\n\n") else {
            Issue.record("not parsed"); return
        }
        #expect(head.version == "HTTP/1.0" && head.first("host") == "a" && !head.asksForWebSocket)
    }

    @Test("malformed heads and oversize ones are refused, not passed on")
    func malformed() {
        for text in [
            "GET /\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nNo colon\r\n\r\n", "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", "GET / HTTP/1.1\r\nX: a\u{1}b\r\n\r\n",
            "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        ] {
            guard case .malformed = Self.parse(text) else {
                Issue.record("accepted: \(text.debugDescription)"); continue
            }
        }
        #expect(Self.parse("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 2000), limit: 1024) == .tooLarge)
    }

    @Test("a handshake needs GET, HTTP/1.1, Connection: Upgrade, one key and version 13")
    func handshakeRules() {
        let good = Self.handshake
        for bad in [
            good.replacingOccurrences(of: "GET ", with: "POST "),
            good.replacingOccurrences(of: "keep-alive, Upgrade", with: "keep-alive"),
            good.replacingOccurrences(of: "Version: 13", with: "Version: 8"),
            good.replacingOccurrences(of: "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", with: ""),
            good.replacingOccurrences(of: "Host:", with: "Sec-WebSocket-Key: second\r\nHost:"),
        ] {
            guard case .head(let head, _) = Self.parse(bad) else { Issue.record("not parsed"); continue }
            #expect(throws: (any Error).self) { try WebSocketHandshake.key(head).get() }
        }
    }

    @Test("the 101 answer carries RFC 6455's accept value; a refusal is a whole response that closes")
    func answers() {
        // RFC 6455 section 1.3's example.
        #expect(WebSocketHandshake.accept(key: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        let response = WebSocketHandshake.switchingProtocols(key: "dGhlIHNhbXBsZSBub25jZQ==", extensions: "permessage-deflate")
        #expect(response.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n") && response.hasSuffix("\r\n\r\n"))
        #expect(response.contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"))
        let refusal = WebSocketHandshake.refusal(.problem(.badRequest("no"), path: "/v1/ws"))
        let parts = refusal.components(separatedBy: "\r\n\r\n")
        #expect(parts[0].hasPrefix("HTTP/1.1 400 Bad Request\r\n") && parts[0].contains("Connection: close"))
        #expect(parts[0].contains("Content-Length: \(parts[1].utf8.count)"))
    }
}
