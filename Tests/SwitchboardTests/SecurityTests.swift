import Foundation
import HummingbirdTesting
import JWTKit
import NIOSSL
import Testing
import SwitchboardCore
import SwitchboardServer

/// The hostile-input catalogue: each test asserts the exact error or close code, and that a
/// well-behaved client is still served afterwards with nothing lost.
@Suite("Security and limits")
struct SecurityTests {
    /// A server with an API key and a JWT secret, where only `public:` is anonymous.
    static func secured(_ config: inout ServerConfiguration) {
        config.apiKey = Tokens.apiKey
        config.jwtSecret = Tokens.secret
        config.namespaces = Namespaces(policies: [
            "": NamespacePolicy(anonymous: false, historySize: 100),
            "public": NamespacePolicy(anonymous: true, historySize: 100),
            "chat": NamespacePolicy(anonymous: false, presence: true, historySize: 100),
            "chatroom": NamespacePolicy(anonymous: false, historySize: 100),
            "open": NamespacePolicy(anonymous: true, clientPublish: true, historySize: 100),
            "collection": NamespacePolicy(anonymous: false, historySize: 1000),
        ])
    }

    static let key = ["Authorization": "Bearer \(Tokens.apiKey)"]

    /// A well-behaved client still connects, subscribes, and gets a REST publish, in order.
    static func stillServes(_ server: TestServer, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let client = try await WSClient.connect(server, headers: key)
        let reply = try await client.command("subscribe", ["channel": "public:check"])
        #expect(reply["result"]?["channel"] == "public:check", sourceLocation: sourceLocation)
        let offset = try await HTTP.with(server) { http in
            let response = try await http.post("/v1/channels/public:check/messages", #"{"data": "ok"}"#, headers: key)
            #expect(response.status == 201, sourceLocation: sourceLocation)
            return response.json["offset"]?.intValue
        }
        let message = try await client.messages(1)
        #expect(message.first?["data"] == "ok", sourceLocation: sourceLocation)
        #expect(message.first?["offset"]?.intValue == offset, sourceLocation: sourceLocation)
        _ = await client.close()
    }

    /// Runs `body` on a secured server, then checks that others are still served.
    static func onSecured(
        configure: (inout ServerConfiguration) -> Void = { _ in },
        logs: LogSink? = nil,
        _ body: @Sendable (TestServer, HTTP) async throws -> Void
    ) async throws {
        try await TestServer.with(configure: { secured(&$0); configure(&$0) }, logs: logs) { server in
            try await HTTP.with(server) { http in try await body(server, http) }
            try await stillServes(server)
        }
    }

    /// A refused WebSocket handshake: its status, code and detail.
    static func expectRefusedHandshake(
        _ http: HTTP, token: String?, status: Int, mentioning fragment: String, headers: [String: String] = [:],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        var h = headers
        if let token { h["Authorization"] = "Bearer \(token)" }
        let response = try await http.upgrade(headers: h)
        #expect(response.status == status, "\(response.text)", sourceLocation: sourceLocation)
        #expect(response.header("Content-Type") == "application/problem+json", sourceLocation: sourceLocation)
        let detail = response.json["detail"]?.stringValue ?? ""
        #expect(detail.localizedCaseInsensitiveContains(fragment), "detail: \(detail)", sourceLocation: sourceLocation)
    }

    // MARK: Tokens at the handshake

    @Test("a token signed with another secret is refused at the handshake (401)")
    func wrongSignature() async throws {
        try await Self.onSecured { _, http in
            let token = try await Tokens.hs256(["sub": "mallory"], secret: "another-secret-that-is-also-long-enough-0123")
            try await Self.expectRefusedHandshake(http, token: token, status: 401, mentioning: "signature")
        }
    }

    @Test("alg: none is refused (401)")
    func algNone() async throws {
        try await Self.onSecured { _, http in
            let token = Tokens.unsigned(["sub": "mallory", "channels": ["*"]])
            try await Self.expectRefusedHandshake(http, token: token, status: 401, mentioning: "invalid token")
        }
    }

    @Test("an expired token is refused (401, says expired)")
    func expired() async throws {
        try await Self.onSecured { _, http in
            let token = try await Tokens.hs256(["sub": "ann", "exp": .int(Int64(Date().timeIntervalSince1970) - 60)])
            try await Self.expectRefusedHandshake(http, token: token, status: 401, mentioning: "expired")
        }
    }

    @Test("a token that is not valid yet (nbf) is refused (401)")
    func notYetValid() async throws {
        try await Self.onSecured { _, http in
            let token = try await Tokens.hs256(["sub": "ann", "nbf": .int(Int64(Date().timeIntervalSince1970) + 3600)])
            try await Self.expectRefusedHandshake(http, token: token, status: 401, mentioning: "not valid yet")
        }
    }

    @Test("a token without sub is refused (401, names the claim)")
    func missingSub() async throws {
        try await Self.onSecured { _, http in
            let token = try await Tokens.hs256(["channels": ["*"]])
            try await Self.expectRefusedHandshake(http, token: token, status: 401, mentioning: "sub")
        }
    }

    @Test("a claim of the wrong type is refused (401)")
    func wrongClaimType() async throws {
        try await Self.onSecured { _, http in
            let token = try await Tokens.hs256(["sub": "ann", "channels": "chat:*"])
            try await Self.expectRefusedHandshake(http, token: token, status: 401, mentioning: "channels")
        }
    }

    @Test("garbage in place of a token is refused (401)")
    func garbageToken() async throws {
        try await Self.onSecured { _, http in
            try await Self.expectRefusedHandshake(http, token: "not.a.jwt", status: 401, mentioning: "invalid")
            try await Self.expectRefusedHandshake(http, token: String(repeating: "A", count: 4000), status: 401, mentioning: "invalid")
        }
    }

    @Test("a bad ?token= is refused; a good one connects")
    func queryToken() async throws {
        try await Self.onSecured { server, http in
            let response = try await http.upgrade("/v1/ws?token=bogus")
            #expect(response.status == 401)
            let token = try await Tokens.user("ann", channels: ["chat:*"])
            let client = try await WSClient.connect(server, query: "?token=\(token)")
            #expect(try await client.command("subscribe", ["channel": "chat:x"])["result"]?["channel"] == "chat:x")
            _ = await client.close()
        }
    }

    // MARK: In-band auth, refresh and expiry

    @Test("an auth frame with a bad token is an unauthorized reply and close 4001")
    func authFrameBad() async throws {
        try await Self.onSecured { server, _ in
            let client = try await WSClient.connect(server)
            let reply = try await client.command("auth", ["token": "nope"])
            #expect(reply["error"]?["code"] == "unauthorized")
            #expect(await client.closeCode() == 4001)
        }
    }

    @Test("an auth frame with a good token lets the connection subscribe to its grants")
    func authFrameGood() async throws {
        try await Self.onSecured { server, _ in
            let client = try await WSClient.connect(server)
            let before = try await client.command("subscribe", ["channel": "chat:x"])
            #expect(before["error"]?["code"] == "unauthorized")
            let reply = try await client.command("auth", ["token": .string(try await Tokens.user("ann", channels: ["chat:*"]))])
            #expect(reply["result"]?["user"] == "ann")
            #expect(try await client.command("subscribe", ["channel": "chat:x"])["result"]?["channel"] == "chat:x")
            _ = await client.close()
        }
    }

    @Test("refresh extends a connection past the old expiry without dropping subscriptions")
    func refreshExtends() async throws {
        try await Self.onSecured { server, http in
            let short = try await Tokens.user("ann", channels: ["chat:*"], ttl: 2)
            let client = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(short)"])
            _ = try await client.command("subscribe", ["channel": "chat:keep"])
            let refreshed = try await client.command("refresh", ["token": .string(try await Tokens.user("ann", channels: ["chat:*"], ttl: 3600))])
            #expect(refreshed["result"]?["expires_at"]?.stringValue?.hasSuffix("Z") == true)
            try await Task.sleep(for: .milliseconds(2600))
            try await http.post("/v1/channels/chat:keep/messages", #"{"data": "still"}"#, headers: Self.key)
            #expect(try await client.messages(1).first?["data"] == "still")
            _ = await client.close()
        }
    }

    @Test("a token that expires without refresh closes the connection with 4101")
    func expiryCloses() async throws {
        try await Self.onSecured { server, _ in
            let short = try await Tokens.user("ann", channels: ["chat:*"], ttl: 2)
            let client = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(short)"])
            _ = try await client.command("subscribe", ["channel": "chat:x"])
            #expect(await client.closeCode() == 4101)
        }
    }

    @Test("refresh with another user's token is forbidden and changes nothing")
    func refreshOtherUser() async throws {
        try await Self.onSecured { server, _ in
            let token = try await Tokens.user("ann", channels: ["chat:*"])
            let client = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(token)"])
            let reply = try await client.command("refresh", ["token": .string(try await Tokens.user("bob", channels: ["*"]))])
            #expect(reply["error"]?["code"] == "forbidden")
            #expect(try await client.command("subscribe", ["channel": "chatroom:x"])["error"]?["code"] == "forbidden")
            _ = await client.close()
        }
    }

    // MARK: Grants

    @Test("chat:* does not reach chatroom:x when subscribing")
    func subscribeGrantEscape() async throws {
        try await Self.onSecured { server, _ in
            let token = try await Tokens.user("ann", channels: ["chat:*"])
            let client = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(token)"])
            let escape = try await client.command("subscribe", ["channel": "chatroom:x"])
            #expect(escape["error"]?["code"] == "forbidden")
            let bare = try await client.command("subscribe", ["channel": "chat"])
            #expect(bare["error"]?["code"] == "forbidden")
            #expect(try await client.command("subscribe", ["channel": "chat:x"])["result"]?["channel"] == "chat:x")
            let history = try await client.command("history", ["channel": "chatroom:x"])
            #expect(history["error"]?["code"] == "forbidden")
            _ = await client.close()
        }
    }

    @Test("publish grants: chat:* does not reach chatroom:x over WebSocket")
    func publishGrantEscape() async throws {
        try await Self.onSecured { server, http in
            let token = try await Tokens.user("ann", channels: ["chat:*"], publish: ["chat:*"])
            let client = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(token)"])
            #expect(try await client.command("publish", ["channel": "chatroom:x", "data": 1])["error"]?["code"] == "forbidden")
            #expect(try await client.command("publish", ["channel": "chat:x", "data": 1])["result"]?["offset"] == 1)
            let history = try await http.get("/v1/channels/chatroom:x/messages", headers: Self.key)
            #expect(history.json["offset"] == 0)
            _ = await client.close()
        }
    }

    @Test("a token's publish claim is all it may publish to, even where client_publish is on; without the claim, client_publish decides")
    func publishClaimBounds() async throws {
        try await Self.onSecured { server, _ in
            let bounded = try await Tokens.user("ann", channels: ["open:*"], publish: ["open:mine"])
            let client = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(bounded)"])
            // open: has client_publish on, but the claim names open:mine only.
            #expect(try await client.command("publish", ["channel": "open:other", "data": 1])["error"]?["code"] == "forbidden")
            #expect(try await client.command("publish", ["channel": "open:mine", "data": 1])["result"]?["offset"] == 1)
            _ = await client.close()

            let unbounded = try await Tokens.user("bob", channels: ["open:*"])
            let other = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(unbounded)"])
            #expect(try await other.command("publish", ["channel": "open:other", "data": 1])["result"]?["offset"] == 1)
            // public: has client_publish off.
            #expect(try await other.command("publish", ["channel": "public:x", "data": 1])["error"]?["code"] == "forbidden")
            _ = await other.close()
        }
    }

    @Test("REST publish: 401 without credentials, 403 with a token lacking the grant, 201 with it or the API key")
    func restPublishGrants() async throws {
        try await Self.onSecured { _, http in
            let body = #"{"data": 1}"#
            #expect(try await http.post("/v1/channels/chat:x/messages", body).status == 401)
            let reader = try await Tokens.user("ann", channels: ["chat:*"])
            let refused = try await http.post("/v1/channels/chat:x/messages", body, headers: ["Authorization": "Bearer \(reader)"])
            #expect(refused.status == 403)
            #expect(refused.json["code"] == "forbidden")
            let writer = try await Tokens.user("ann", publish: ["chat:*"])
            #expect(try await http.post("/v1/channels/chatroom:x/messages", body, headers: ["Authorization": "Bearer \(writer)"]).status == 403)
            #expect(try await http.post("/v1/channels/chat:x/messages", body, headers: ["Authorization": "Bearer \(writer)"]).status == 201)
            #expect(try await http.post("/v1/channels/chat:x/messages", body, headers: ["X-API-Key": Tokens.apiKey]).status == 201)
            #expect(try await http.post("/v1/channels/chat:x/messages", body, headers: ["X-API-Key": "wrong-key-wrong-key"]).status == 401)
            #expect(try await http.get("/v1/channels/chat:x/messages", headers: Self.key).json["offset"] == 2)
        }
    }

    @Test("collection grants: read and write are separate, and stocks does not reach stocks2")
    func collectionGrants() async throws {
        try await Self.onSecured { _, http in
            let reader = ["Authorization": "Bearer \(try await Tokens.user("ann", read: ["stocks"]))"]
            let writer = ["Authorization": "Bearer \(try await Tokens.user("bob", read: ["stocks"], write: ["stocks"]))"]
            #expect(try await http.put("/v1/collections/stocks/AAPL", #"{"p": 1}"#).status == 401)
            #expect(try await http.put("/v1/collections/stocks/AAPL", #"{"p": 1}"#, headers: reader).status == 403)
            #expect(try await http.put("/v1/collections/stocks/AAPL", #"{"p": 1}"#, headers: writer).status == 201)
            #expect(try await http.put("/v1/collections/stocks2/AAPL", #"{"p": 1}"#, headers: writer).status == 403)
            #expect(try await http.get("/v1/collections/stocks/AAPL", headers: reader).status == 200)
            #expect(try await http.get("/v1/collections/stocks").status == 401)
            #expect(try await http.get("/v1/collections/bonds", headers: reader).status == 403)
            #expect(try await http.delete("/v1/collections/stocks/AAPL", headers: reader).status == 403)
            #expect(try await http.get("/v1/collections/stocks/AAPL", headers: Self.key).json["version"] == 1)
        }
    }

    @Test("anonymous connections reach only anonymous namespaces")
    func anonymousPolicy() async throws {
        try await Self.onSecured { server, _ in
            let client = try await WSClient.connect(server)
            #expect(try await client.command("subscribe", ["channel": "public:x"])["result"]?["channel"] == "public:x")
            #expect(try await client.command("subscribe", ["channel": "private"])["error"]?["code"] == "unauthorized")
            #expect(try await client.command("subscribe", ["channel": "collection:stocks"])["error"]?["code"] == "unauthorized")
            #expect(try await client.command("publish", ["channel": "public:x", "data": 1])["error"]?["code"] == "forbidden")
            #expect(try await client.command("publish", ["channel": "open:x", "data": 1])["result"]?["offset"] == 1)
            _ = await client.close()
        }
    }

    @Test("sys: channels and the channel list need the API key or a sys grant")
    func systemChannels() async throws {
        try await Self.onSecured { server, http in
            let anonymous = try await WSClient.connect(server)
            #expect(try await anonymous.command("subscribe", ["channel": "sys:stats"])["error"]?["code"] == "unauthorized")
            _ = await anonymous.close()
            let user = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(try await Tokens.user("ann", channels: ["*"]))"])
            #expect(try await user.command("subscribe", ["channel": "sys:stats"])["result"]?["channel"] == "sys:stats")
            _ = await user.close()
            let admin = try await WSClient.connect(server, headers: Self.key)
            #expect(try await admin.command("subscribe", ["channel": "sys:stats"])["result"]?["channel"] == "sys:stats")
            _ = await admin.close()
            #expect(try await http.get("/v1/channels").status == 401)
            #expect(try await http.get("/v1/channels", headers: ["Authorization": "Bearer \(try await Tokens.user("ann", channels: ["*"]))"]).status == 403)
            #expect(try await http.get("/v1/channels", headers: Self.key).status == 200)
        }
    }

    // MARK: Origins

    @Test("a foreign Origin is refused at the handshake (403); listed and absent origins connect")
    func foreignOrigin() async throws {
        try await Self.onSecured(configure: { $0.allowedOrigins = ["https://app.example.com"] }) { server, http in
            try await Self.expectRefusedHandshake(http, token: nil, status: 403, mentioning: "origin", headers: ["Origin": "https://evil.example"])
            let listed = try await WSClient.connect(server, headers: ["Origin": "https://app.example.com"])
            _ = try await listed.command("ping")
            _ = await listed.close()
        }
    }

    @Test("without allowed_origins, an authenticated server allows only its own origin")
    func sameOriginDefault() async throws {
        try await Self.onSecured { server, http in
            try await Self.expectRefusedHandshake(http, token: nil, status: 403, mentioning: "origin", headers: ["Origin": "http://evil.example"])
            let own = try await WSClient.connect(server, headers: ["Origin": "http://127.0.0.1:\(server.port)"])
            _ = try await own.command("ping")
            _ = await own.close()
        }
    }

    @Test("CORS preflights: allowed origins get 204 with headers, others 403")
    func corsPreflight() async throws {
        try await Self.onSecured(configure: { $0.allowedOrigins = ["https://app.example.com"] }) { _, http in
            let ok = try await http.request(.options, "/v1/collections/stocks", headers: [
                "Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT",
            ])
            #expect(ok.status == 204)
            #expect(ok.header("Access-Control-Allow-Origin") == "https://app.example.com")
            #expect(ok.header("Access-Control-Allow-Headers")?.contains("Authorization") == true)
            let evil = try await http.request(.options, "/v1/collections/stocks", headers: [
                "Origin": "https://evil.example", "Access-Control-Request-Method": "PUT",
            ])
            #expect(evil.status == 403)
            let get = try await http.get("/healthz", headers: ["Origin": "https://app.example.com"])
            #expect(get.header("Access-Control-Allow-Origin") == "https://app.example.com")
            let foreignGet = try await http.get("/healthz", headers: ["Origin": "https://evil.example"])
            #expect(foreignGet.header("Access-Control-Allow-Origin") == nil)
        }
    }

    // MARK: Floods and limits

    @Test("a command flood gets rate_limited errors, then close 4129; a bystander is not slowed")
    func commandFlood() async throws {
        try await Self.onSecured(configure: { $0.limits.commandsPerSecond = 20; $0.limits.commandBurst = 20 }) { server, _ in
            let bystander = try await WSClient.connect(server, headers: Self.key)
            _ = try await bystander.command("subscribe", ["channel": "public:calm"])
            let flooder = try await WSClient.connect(server)
            for i in 0..<200 { flooder.sendText(#"{"id": \#(i + 1000), "op": "ping"}"#) }
            var limited = 0
            var temporary = true
            while let frame = try await flooder.next(timeout: .seconds(10)) {
                if frame["error"]?["code"] == "rate_limited" {
                    limited += 1
                    temporary = temporary && frame["error"]?["temporary"] == true
                }
            }
            #expect(limited >= 10)
            #expect(temporary)
            #expect(await flooder.closeCode() == 4129)
            for _ in 0..<5 { #expect(try await bystander.command("ping")["result"] == [:]) }
            _ = await bystander.close()
        }
    }

    @Test("a handshake flood from one address gets 429; established connections keep working")
    func handshakeFlood() async throws {
        try await Self.onSecured(configure: { $0.limits.handshakesPerSecond = 3 }) { server, http in
            let established = try await WSClient.connect(server, headers: Self.key)
            var statuses: [Int] = []
            for _ in 0..<12 {
                statuses.append(try await http.upgrade(headers: ["Authorization": "Bearer bogus"]).status)
            }
            #expect(statuses.contains(429))
            let refused = try await http.upgrade()
            #expect(refused.status == 429)
            #expect(refused.json["code"] == "rate_limited")
            #expect(try await established.command("ping")["result"] == [:])
            _ = await established.close()
            try await Task.sleep(for: .seconds(2))  // Let the bucket refill before stillServes connects.
        }
    }

    @Test("more connections from one address than connections_per_ip get 429")
    func connectionsPerIP() async throws {
        try await Self.onSecured(configure: { $0.limits.connectionsPerIP = 3 }) { server, http in
            var open: [WSClient] = []
            for _ in 0..<2 { open.append(try await WSClient.connect(server)) }
            let third = try await WSClient.connect(server)
            let refused = try await http.upgrade()
            #expect(refused.status == 429)
            #expect(refused.json["detail"]?.stringValue?.contains("connections") == true)
            _ = await third.close()
            for c in open { _ = await c.close() }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    @Test("loopback peers are limited like any other (connections_per_ip: 3 on a laptop)")
    func loopbackIsLimited() async throws {
        try await TestServer.with(configure: { $0.limits.connectionsPerIP = 3 }) { server in
            var open: [WSClient] = []
            for _ in 0..<3 { open.append(try await WSClient.connect(server)) }
            let refused = try await HTTP.with(server) { http in try await http.upgrade() }
            #expect(refused.status == 429)
            for c in open { _ = await c.close() }
        }
    }

    @Test("behind a trusted proxy, limits count the forwarded client address; from anyone else the header is ignored")
    func trustedProxies() async throws {
        try await TestServer.with(configure: {
            $0.limits.connectionsPerIP = 2
            $0.trustedProxies = [AddressRange("127.0.0.0/8")!]
        }) { server in
            try await HTTP.with(server) { http in
                let alice = ["X-Forwarded-For": "203.0.113.5"]
                var open: [WSClient] = []
                for _ in 0..<2 { open.append(try await WSClient.connect(server, headers: alice)) }
                // A third from the same forwarded address is refused; another address is not.
                #expect(try await http.upgrade(headers: alice).status == 429)
                let bob = try await WSClient.connect(server, headers: ["X-Forwarded-For": "198.51.100.9, 127.0.0.1"])
                // The same client through the Forwarded header.
                #expect(try await http.upgrade(headers: ["Forwarded": "for=203.0.113.5"]).status == 429)
                _ = await bob.close()
                for c in open { _ = await c.close() }
            }
        }
        try await TestServer.with(configure: { $0.limits.connectionsPerIP = 2 }) { server in
            // No trusted proxies: every connection is 127.0.0.1's, whatever it claims.
            var open: [WSClient] = []
            for i in 0..<2 { open.append(try await WSClient.connect(server, headers: ["X-Forwarded-For": "10.0.0.\(i)"])) }
            let refused = try await HTTP.with(server) { http in try await http.upgrade(headers: ["X-Forwarded-For": "10.0.0.9"]) }
            #expect(refused.status == 429)
            for c in open { _ = await c.close() }
        }
    }

    @Test("a half-open handshake is closed after the request timeout")
    func halfOpenHandshake() async throws {
        try await Self.onSecured(configure: { $0.limits.requestTimeoutSeconds = 1 }) { server, _ in
            let fd = try RawSocket.connect(port: server.port)
            defer { RawSocket.close(fd) }
            RawSocket.send(fd, "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            let started = ContinuousClock.now
            #expect(RawSocket.waitForClose(fd, timeout: .seconds(10)))
            #expect(ContinuousClock.now - started < .seconds(5))
        }
    }

    @Test("the subscription limit is an error reply, and the connection goes on")
    func subscriptionFlood() async throws {
        try await Self.onSecured(configure: { $0.limits.subscriptions = 5 }) { server, _ in
            let client = try await WSClient.connect(server)
            var codes: [JSONValue?] = []
            for i in 0..<8 { codes.append(try await client.command("subscribe", ["channel": .string("public:s\(i)")])["error"]?["code"]) }
            #expect(codes.prefix(5).allSatisfy { $0 == nil })
            #expect(codes.suffix(3).allSatisfy { $0 == "too_large" })
            #expect(try await client.command("ping")["result"] == [:])
            _ = await client.close()
        }
    }

    // MARK: Malformed frames

    @Test("an oversize frame closes with 1009")
    func oversizeFrame() async throws {
        try await Self.onSecured(configure: { $0.limits.messageBytes = 1024 }) { server, _ in
            let client = try await WSClient.connect(server)
            client.sendText(#"{"id": 1, "op": "ping", "pad": "\#(String(repeating: "x", count: 2000))"}"#)
            #expect(await client.closeCode() == 1009)
        }
    }

    @Test("an oversize REST body is 413 and nothing is written")
    func oversizeBody() async throws {
        try await Self.onSecured { _, http in
            let response = try await http.post("/v1/channels/public:x/messages", #"{"data": "\#(String(repeating: "x", count: 100_000))"}"#, headers: Self.key)
            #expect(response.status == 413)
            #expect(response.json["code"] == "too_large")
            #expect(try await http.get("/v1/channels/public:x/messages").json["offset"] == 0)
        }
    }

    @Test("an invalid UTF-8 text frame closes with 1007")
    func invalidUTF8() async throws {
        try await Self.onSecured { server, _ in
            let client = try await WSClient.connect(server)
            client.sendRawText([0x7B, 0xFF, 0xFE, 0x7D])
            #expect(await client.closeCode() == 1007)
        }
    }

    @Test("deeply nested JSON is an error push, and the connection goes on")
    func deeplyNested() async throws {
        try await Self.onSecured { server, _ in
            let client = try await WSClient.connect(server)
            client.sendText(String(repeating: "[", count: 20_000) + String(repeating: "]", count: 20_000))
            let frame = try #require(try await client.next())
            #expect(frame["type"] == "error")
            #expect(frame["error"]?["code"] == "bad_request")
            #expect(try await client.command("ping")["result"] == [:])
            _ = await client.close()
        }
    }

    @Test("numbers beyond double range are refused; big integers are kept as numbers")
    func hugeNumbers() async throws {
        try await Self.onSecured { server, _ in
            let client = try await WSClient.connect(server)
            client.sendText(#"{"id": 1, "op": "publish", "channel": "open:n", "data": 1e999}"#)
            let refused = try #require(try await client.next())
            #expect(refused["type"] == "error")
            client.sendText(#"{"id": 99999999999999999999999, "op": "ping"}"#)
            #expect(try #require(try await client.next())["type"] == "error")
            let ok = try await client.command("publish", ["channel": "open:n", "data": 123456789012345678901234567890.0])
            #expect(ok["result"]?["offset"] == 1)
            _ = await client.close()
        }
    }

    @Test("empty and whitespace frames get an error push")
    func emptyFrames() async throws {
        try await Self.onSecured { server, _ in
            let client = try await WSClient.connect(server)
            for text in ["", "   ", "\n"] {
                client.sendText(text)
                #expect(try #require(try await client.next())["error"]?["code"] == "bad_request")
            }
            #expect(try await client.command("ping")["result"] == [:])
            _ = await client.close()
        }
    }

    // MARK: Keys, TLS and logs

    @Test("a JWT secret under 32 bytes stops the server from starting, with a clear message")
    func shortSecret() async throws {
        var config = ServerConfiguration()
        config.database = "sqlite:\(TestServer.temporaryDatabase())"
        config.jwtSecret = "too-short"
        do {
            _ = try await SwitchboardServer(configuration: config, logger: .init(label: "t"))
            Issue.record("started with a short secret")
        } catch {
            #expect("\(error)".contains("at least 32"))
        }
    }

    @Test("RS256 tokens verify with a PEM public key; an HS256 token signed with that public key does not")
    func rs256AndAlgorithmConfusion() async throws {
        let (privatePath, publicPath) = try OpenSSL.rsaKeyPair()
        try await Self.onSecured(configure: { $0.jwtPublicKeyFile = publicPath; $0.jwtSecret = nil }) { server, http in
            let keys = JWTKeyCollection()
            let privateKey = try Insecure.RSA.PrivateKey(pem: String(contentsOfFile: privatePath, encoding: .utf8))
            await keys.add(rsa: privateKey, digestAlgorithm: .sha256)
            let exp = Int64(Date().timeIntervalSince1970) + 600
            let token = try await keys.sign(Tokens.Claims(["sub": "rsa-user", "exp": .int(exp), "channels": ["chat:*"]]))
            let client = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(token)"])
            #expect(try await client.command("subscribe", ["channel": "chat:x"])["result"]?["channel"] == "chat:x")
            _ = await client.close()
            let publicPEM = try String(contentsOfFile: publicPath, encoding: .utf8)
            let forged = try await Tokens.hs256(["sub": "mallory", "channels": ["*"]], secret: publicPEM)
            try await Self.expectRefusedHandshake(http, token: forged, status: 401, mentioning: "invalid token")
        }
    }

    @Test("ES256 tokens verify with a JWKS file")
    func es256WithJWKS() async throws {
        let privateKey = ES256PrivateKey()
        let parameters = try #require(privateKey.publicKey.parameters)
        let jwks = #"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig", "x": "\#(parameters.x)", "y": "\#(parameters.y)"}]}"#
        let path = try OpenSSL.temporaryDirectory().appendingPathComponent("jwks.json").path
        try jwks.write(toFile: path, atomically: true, encoding: .utf8)
        try await Self.onSecured(configure: { $0.jwksFile = path }) { server, _ in
            let keys = JWTKeyCollection()
            await keys.add(ecdsa: privateKey, kid: "k1")
            let token = try await keys.sign(Tokens.Claims(["sub": "ec-user", "channels": ["chat:*"]]), kid: "k1")
            let client = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(token)"])
            #expect(try await client.command("subscribe", ["channel": "chat:y"])["result"]?["channel"] == "chat:y")
            _ = await client.close()
        }
    }

    @Test("with --tls-cert and --tls-key the server speaks https and wss")
    func tls() async throws {
        let (certificate, key) = try OpenSSL.selfSignedCertificate()
        try await TestServer.with(configure: { $0.tlsCertificateFile = certificate; $0.tlsKeyFile = key }) { server in
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            let client = TestClient(host: "127.0.0.1", port: server.port, configuration: .init(tlsConfiguration: tls, serverName: "localhost"))
            client.connect()
            let response = try await client.get("/healthz")
            #expect(response.status == .ok)
            try await client.shutdown()
            let ws = try await WSClient.connect(server, url: "wss://127.0.0.1:\(server.port)/v1/ws", tls: tls)
            _ = try await ws.command("subscribe", ["channel": "chat:tls"])
            try await HTTP.with(server) { _ in }  // Plain HTTP must not work on a TLS port:
            let plain = HTTP(port: server.port)
            await #expect(throws: (any Error).self) { _ = try await plain.get("/healthz") }
            try? await plain.client.shutdown()
            _ = await ws.close()
        }
    }

    @Test("tokens and keys never appear in the logs")
    func noSecretsInLogs() async throws {
        let logs = LogSink()
        let good = try await Tokens.user("ann", channels: ["chat:*"])
        let bad = try await Tokens.hs256(["sub": "x"], secret: "another-secret-that-is-also-long-enough-0123")
        try await Self.onSecured(logs: logs) { server, http in
            _ = try await http.upgrade("/v1/ws?token=\(bad)")
            let client = try await WSClient.connect(server, query: "?token=\(good)")
            _ = try await client.command("auth", ["token": .string(bad)])
            _ = await client.closeCode()
            _ = try await http.post("/v1/channels/chat:x/messages", #"{"data": 1}"#, headers: Self.key)
        }
        let text = logs.text
        #expect(text.contains("connected"))
        for secret in [good, bad, Tokens.apiKey, Tokens.secret] {
            #expect(!text.contains(secret))
            #expect(!text.contains(String(secret.suffix(20))))
        }
    }
}

/// A plain TCP socket, for handshakes no WebSocket client would send.
enum RawSocket {
    static func connect(port: Int, receiveBuffer: Int32? = nil) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw TestFailure("connect failed") }
        return fd
    }

    static func send(_ fd: Int32, _ text: String) {
        _ = text.withCString { Glibc.send(fd, $0, strlen($0), 0) }
    }

    /// True once the server closes the connection (a read returns 0), false at the timeout.
    static func waitForClose(_ fd: Int32, timeout: Duration) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let millis = Int32(timeout.components.seconds * 1000)
        guard poll(&poller, 1, millis) > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 1024)
        return recv(fd, &buffer, buffer.count, 0) <= 0
    }

    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }
}
