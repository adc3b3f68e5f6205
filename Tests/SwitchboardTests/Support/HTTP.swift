import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import SwitchboardCore

/// A real HTTP/1.1 client over TCP (Hummingbird's test client), one connection, kept alive.
struct HTTP: Sendable {
    struct Response: Sendable {
        var status: Int
        var headers: HTTPFields
        var text: String
        var json: JSONValue { (try? JSONValue.parse(text)) ?? .null }
        func header(_ name: String) -> String? { HTTPField.Name(name).flatMap { headers[$0] } }
    }

    let client: TestClient
    let port: Int

    init(port: Int) {
        self.port = port
        client = TestClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(30)))
        client.connect()
    }

    static func with<T: Sendable>(_ server: TestServer, _ body: @Sendable (HTTP) async throws -> T) async throws -> T {
        let http = HTTP(port: server.port)
        defer { Task { try? await http.client.shutdown() } }
        return try await body(http)
    }

    @discardableResult
    func request(_ method: HTTPRequest.Method, _ path: String, body: String? = nil, headers: [String: String] = [:]) async throws -> Response {
        var fields = HTTPFields()
        if body != nil { fields[.contentType] = "application/json" }
        for (k, v) in headers { fields[HTTPField.Name(k)!] = v }
        // A Host header, which proxies (nginx) require of HTTP/1.1 requests.
        let request = TestClient.Request(path, method: method, authority: "127.0.0.1:\(port)", headers: fields, body: body.map { ByteBuffer(string: $0) })
        let response = try await client.execute(request)
        let text = response.body.map { String(buffer: $0) } ?? ""
        return Response(status: Int(response.status.code), headers: response.headers, text: text)
    }

    @discardableResult
    func get(_ path: String, headers: [String: String] = [:]) async throws -> Response {
        try await request(.get, path, headers: headers)
    }

    @discardableResult
    func post(_ path: String, _ body: String, headers: [String: String] = [:]) async throws -> Response {
        try await request(.post, path, body: body, headers: headers)
    }

    @discardableResult
    func put(_ path: String, _ body: String, headers: [String: String] = [:]) async throws -> Response {
        try await request(.put, path, body: body, headers: headers)
    }

    @discardableResult
    func patch(_ path: String, _ body: String, headers: [String: String] = [:]) async throws -> Response {
        var h = headers
        if h["Content-Type"] == nil { h["Content-Type"] = "application/merge-patch+json" }
        return try await request(.patch, path, body: body, headers: h)
    }

    @discardableResult
    func delete(_ path: String, headers: [String: String] = [:]) async throws -> Response {
        try await request(.delete, path, headers: headers)
    }

    /// A WebSocket upgrade request whose refusal status the test reads (a real client cannot see it).
    func upgrade(_ path: String = "/v1/ws", headers: [String: String] = [:]) async throws -> Response {
        var all = [
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        ]
        all.merge(headers) { $1 }
        // A refused handshake closes its connection, so each one gets its own.
        let fresh = HTTP(port: port)
        defer { Task { try? await fresh.client.shutdown() } }
        return try await fresh.request(.get, path, headers: all)
    }

    /// Publishes over REST and returns the offset.
    @discardableResult
    func publish(_ channel: String, _ data: JSONValue) async throws -> Int64 {
        let response = try await post("/v1/channels/\(channel)/messages", JSONValue.object(["data": data]).serialized)
        guard response.status == 201, let offset = response.json["offset"]?.intValue else {
            throw TestFailure("publish failed: \(response.status) \(response.text)")
        }
        return offset
    }
}
