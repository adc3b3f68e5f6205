import Foundation
import HTTPTypes
import Testing
import SwitchboardCore

/// Bad input gets a clear error, changes nothing, and the connection keeps working.
@Suite("Bad input")
struct BadInputTests {
    /// Runs `bad`, checks its status and problem document, then that nothing changed and a good request works.
    private func expectProblem(
        _ http: HTTP,
        status: Int,
        code: String,
        mentioning fragment: String,
        _ bad: () async throws -> HTTP.Response,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let before = try await http.get("/v1/collections/stocks")
        let response = try await bad()
        #expect(response.status == status, "\(response.text)", sourceLocation: sourceLocation)
        #expect(response.header("Content-Type") == "application/problem+json", sourceLocation: sourceLocation)
        #expect(response.json["status"] == .int(Int64(status)), sourceLocation: sourceLocation)
        #expect(response.json["code"] == .string(code), sourceLocation: sourceLocation)
        let detail = response.json["detail"]?.stringValue ?? ""
        #expect(detail.localizedCaseInsensitiveContains(fragment), "detail: \(detail)", sourceLocation: sourceLocation)
        let after = try await http.get("/v1/collections/stocks")
        #expect(after.text == before.text, "nothing changed", sourceLocation: sourceLocation)
        #expect(try await http.get("/healthz").status == 200, sourceLocation: sourceLocation)
    }

    @Test("REST: each bad request is a 4xx problem naming the fault, and changes nothing")
    func restBadInput() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                try await http.put("/v1/collections/stocks/AAPL", #"{"price": 1}"#)
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "not valid JSON") {
                    try await http.put("/v1/collections/stocks/AAPL", "{price: 2")
                }
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "object") {
                    try await http.put("/v1/collections/stocks/AAPL", "[1, 2]")
                }
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "object") {
                    try await http.post("/v1/collections/stocks", "\"just a string\"")
                }
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "empty") {
                    try await http.request(.post, "/v1/collections/stocks", body: "")
                }
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "collection name") {
                    try await http.put("/v1/collections/bad%20name/x", "{}")
                }
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "collection name") {
                    try await http.get("/v1/collections/\(String(repeating: "a", count: 65))")
                }
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "channel name") {
                    try await http.post("/v1/channels/bad!channel/messages", #"{"data": 1}"#)
                }
                try await expectProblem(http, status: 413, code: "too_large", mentioning: "limit") {
                    try await http.put("/v1/collections/stocks/AAPL", #"{"blob": "\#(String(repeating: "x", count: 70_000))"}"#)
                }
                for limit in ["0", "-1", "1001", "ten", "1.5"] {
                    try await expectProblem(http, status: 400, code: "bad_request", mentioning: "limit") {
                        try await http.get("/v1/collections/stocks?limit=\(limit)")
                    }
                }
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "since") {
                    try await http.get("/v1/channels/news/messages?since=nonsense")
                }
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "filter") {
                    try await http.get("/v1/collections/stocks?filter[a.b]=1")
                }
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "data") {
                    try await http.post("/v1/channels/news/messages", #"{"text": "no data field"}"#)
                }
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "idempotency_key") {
                    try await http.post("/v1/channels/news/messages", #"{"data": 1, "idempotency_key": 5}"#)
                }
                try await expectProblem(http, status: 400, code: "bad_request", mentioning: "object") {
                    try await http.patch("/v1/collections/stocks/AAPL", "[]")
                }
                try await expectProblem(http, status: 415, code: "unsupported_media_type", mentioning: "merge patch") {
                    try await http.patch("/v1/collections/stocks/AAPL", #"[{"op": "remove", "path": "/price"}]"#, headers: ["Content-Type": "application/json-patch+json"])
                }
                try await expectProblem(http, status: 403, code: "forbidden", mentioning: "reserved") {
                    try await http.post("/v1/channels/collection:stocks/messages", #"{"data": 1}"#)
                }
                try await expectProblem(http, status: 404, code: "not_found", mentioning: "/v2/nothing") {
                    try await http.get("/v2/nothing")
                }
                try await expectProblem(http, status: 426, code: "upgrade_required", mentioning: "WebSocket") {
                    try await http.get("/v1/ws")
                }
                // Nothing was published on the channels that were refused.
                #expect(try await http.get("/v1/channels/news/messages").json["offset"] == 0)
                #expect(try await http.get("/v1/collections/stocks/AAPL").json["version"] == 1)
            }
        }
    }

    @Test("REST: a published message over message_bytes is 413 and nothing is published, as over WebSocket")
    func restMessageLimit() async throws {
        try await TestServer.with(configure: { $0.limits.messageBytes = 1000 }) { server in
            try await HTTP.with(server) { http in
                let big = String(repeating: "x", count: 1200)
                try await expectProblem(http, status: 413, code: "too_large", mentioning: "message_bytes") {
                    try await http.post("/v1/channels/chat:big/messages", #"{"data": "\#(big)"}"#)
                }
                let history = try await http.get("/v1/channels/chat:big/messages").json
                #expect(history["messages"]?.arrayValue?.isEmpty == true)
                let fits = String(repeating: "x", count: 900)
                #expect(try await http.post("/v1/channels/chat:big/messages", #"{"data": "\#(fits)"}"#).status == 201)
            }
        }
    }

    @Test("REST: a method a path does not serve is 405 with Allow (the router's own methods for it); an unknown path stays 404")
    func methodNotAllowed() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let refused: [(HTTPRequest.Method, String, allow: String)] = [
                    (.put, "/v1/channels/chat:x/messages", "GET, POST"),
                    (.delete, "/v1/channels", "GET"),
                    (.delete, "/v1/collections/stocks", "GET, POST"),
                    (.post, "/v1/collections/stocks/acme", "GET, HEAD, PUT, PATCH, DELETE"),
                    (.put, "/healthz", "GET"),
                    (.post, "/v1/poll", "GET"),
                    (.post, "/v1/sse", "GET"),
                    (.post, "/openapi.json", "GET, HEAD"),
                    (.delete, "/", "GET, HEAD"),
                    (.put, "/demo/chat.html", "GET, HEAD"),
                ]
                for (method, path, allow) in refused {
                    try await expectProblem(http, status: 405, code: "method_not_allowed", mentioning: "\(method.rawValue) is not allowed") {
                        let response = try await http.request(method, path, body: "{}")
                        #expect(response.header("Allow") == allow, "\(method) \(path)")
                        return response
                    }
                }
                // HEAD where only GET is served is 405 too: a stream's GET has effects.
                let head = try await http.request(.head, "/v1/sse?channels=chat:x")
                #expect(head.status == 405 && head.header("Allow") == "GET")
                #expect(try await http.request(.head, "/v1/collections/stocks/acme").status == 404)  // served: no such record
                #expect(try await http.request(.get, "/v1/nothing").status == 404)
                #expect(try await http.request(.put, "/v1/channels/chat:x/messages/extra").status == 404)
                #expect(try await http.request(.post, "/no-such-page.html").status == 404)
                #expect(try await http.request(.post, "/../Package.swift").status == 404)
            }
        }
    }

    @Test("WebSocket: a frame that is not JSON gets an error push and the connection keeps working")
    func malformedFrame() async throws {
        try await TestServer.with { server in
            let client = try await WSClient.connect(server)
            for bad in ["{not json", "", "[1,2]", "42", #"{"op": "ping"}"#, #"{"id": "7", "op": "ping"}"#, #"{"id": 1.5, "op": "ping"}"#] {
                client.sendText(bad)
                let frame = try #require(try await client.next())
                #expect(frame["type"] == "error", "for \(bad)")
                #expect(frame["error"]?["code"] == "bad_request", "for \(bad)")
                #expect(frame["error"]?["message"]?.stringValue?.isEmpty == false)
            }
            #expect(try await client.command("ping")["result"] == [:])
            _ = await client.close()
        }
    }

    @Test("WebSocket: a binary frame gets a clear error and the connection keeps working")
    func binaryFrame() async throws {
        try await TestServer.with { server in
            let client = try await WSClient.connect(server)
            client.sendBinary([1, 2, 3])
            let frame = try #require(try await client.next())
            #expect(frame["type"] == "error")
            #expect(frame["error"]?["message"]?.stringValue?.contains("binary") == true)
            #expect(try await client.command("ping")["result"] == [:])
            _ = await client.close()
        }
    }

    @Test("WebSocket: unknown op, missing fields and wrong types are error replies with the id")
    func badCommands() async throws {
        try await TestServer.with { server in
            let client = try await WSClient.connect(server)
            let cases: [(String, [String: JSONValue], String)] = [
                ("teleport", [:], "unknown op"),
                ("subscribe", [:], "channel"),
                ("subscribe", ["channel": 5], "string"),
                ("subscribe", ["channel": "bad channel!"], "channel name"),
                ("subscribe", ["channel": "ok", "since": "yesterday"], "since"),
                ("subscribe", ["channel": "ok", "since": ["epoch": "e", "offset": -1]], "since"),
                ("subscribe", ["channel": "ok", "presence": "yes"], "boolean"),
                ("publish", ["channel": "chat:a"], "data"),
                ("history", ["channel": "chat:a", "limit": 0], "limit"),
                ("history", ["channel": "chat:a", "limit": "ten"], "limit"),
                ("unsubscribe", [:], "channel"),
            ]
            for (op, fields, fragment) in cases {
                let reply = try await client.command(op, fields)
                #expect(reply["type"] == "reply")
                #expect(reply["error"]?["code"] == "bad_request", "\(op) \(fields)")
                let message = reply["error"]?["message"]?.stringValue ?? ""
                #expect(message.localizedCaseInsensitiveContains(fragment), "\(op): \(message)")
            }
            // The failed subscribe left nothing behind: subscribing now works.
            let ok = try await client.command("subscribe", ["channel": "ok"])
            #expect(ok["result"]?["channel"] == "ok")
            let again = try await client.command("subscribe", ["channel": "ok"])
            #expect(again["error"]?["code"] == "conflict")
            _ = await client.close()
        }
    }

    @Test("WebSocket: a message over the size limit closes with 1009; others are unaffected")
    func oversizeMessage() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let bystander = try await WSClient.connect(server)
                _ = try await bystander.command("subscribe", ["channel": "news"])
                let client = try await WSClient.connect(server)
                client.sendText(#"{"id": 1, "op": "publish", "channel": "chat:a", "data": "\#(String(repeating: "x", count: 70_000))"}"#)
                #expect(await client.closeCode() == 1009)
                try await http.publish("news", "still here")
                #expect(try await bystander.messages(1).first?["data"] == "still here")
                #expect(try await http.get("/v1/channels/chat:a/messages").json["offset"] == 0)
                _ = await bystander.close()
            }
        }
    }

    @Test("WebSocket: the subscription limit is an error, not a close")
    func subscriptionLimit() async throws {
        try await TestServer.with(configure: { $0.limits.subscriptions = 3 }) { server in
            let client = try await WSClient.connect(server)
            for i in 0..<3 { _ = try await client.command("subscribe", ["channel": .string("c\(i)")]) }
            let refused = try await client.command("subscribe", ["channel": "c3"])
            #expect(refused["error"]?["code"] == "too_large")
            _ = try await client.command("unsubscribe", ["channel": "c0"])
            #expect(try await client.command("subscribe", ["channel": "c3"])["result"]?["channel"] == "c3")
            _ = await client.close()
        }
    }
}
