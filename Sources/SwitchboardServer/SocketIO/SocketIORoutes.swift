import Foundation
import HTTPTypes
import Hummingbird
import ServiceLifecycle
import SwitchboardCore

/// `GET` and `POST /socket.io/`: Engine.IO's handshake and long-polling (SPEC section 8).
/// WebSocket upgrades to the same path are taken by `UpgradeChannel`.
struct SocketIORoutes {
    typealias Context = SwitchboardRequestContext
    let server: SocketIOServer
    let gate: HandshakeGate

    func register(on router: Router<Context>) {
        router.get("socket.io", use: get)
        router.post("socket.io", use: post)
        router.on("socket.io", method: .put, use: refuse)
        router.on("socket.io", method: .options, use: refuse)
    }

    private func handshake(_ request: Request, context: Context) throws(EngineIOError) -> SocketIOHandshake {
        try SocketIOHandshake.parse(
            target: request.uri.string, credential: Credentials.from(request), ip: context.clientIP,
            isUpgrade: false, isGet: request.method == .get
        )
    }

    func get(_ request: Request, context: Context) async throws -> Response {
        let handshake: SocketIOHandshake
        do {
            handshake = try self.handshake(request, context: context)
        } catch {
            return Self.response(error)
        }
        guard let sid = handshake.sid else { return open(handshake, request: request) }
        guard let session = server.session(sid) else { return Self.response(.sessionUnknown) }
        // A draining server answers a waiting poll at once: the client reconnects elsewhere.
        let answer = await withGracefulShutdownHandler {
            await session.poll()
        } onGracefulShutdown: {
            session.closeForRestart()
        }
        switch answer {
        case .payload(let payload): return Self.text(payload)
        case .error(let error): return Self.response(error)
        }
    }

    /// A new long-polling session: the checks every long-lived connection passes (SPEC
    /// section 8: the same origin checks and limits as `/v1/ws`; credentials come with CONNECT).
    private func open(_ handshake: SocketIOHandshake, request: Request) -> Response {
        if let refusal = gate.screen(origin: request.headers[.origin], host: request.head.authority, newConnectionFrom: handshake.ip) {
            return Self.response(.refused(refusal))
        }
        let session = server.open(handshake: handshake, webSocket: nil)
        return Self.text(session.openPacket(upgrades: ["websocket"]))
    }

    func post(_ request: Request, context: Context) async throws -> Response {
        let handshake: SocketIOHandshake
        do {
            handshake = try self.handshake(request, context: context)
        } catch {
            return Self.response(error)
        }
        guard let sid = handshake.sid, let session = server.session(sid) else { return Self.response(.sessionUnknown) }
        if request.headers[.contentType]?.hasPrefix("application/octet-stream") == true {
            session.end(reason: "binary POST")
            return Self.response(.badRequest)
        }
        if let refusal = session.beginPost() { return Self.response(refusal) }
        let limit = server.environment.maxMessageBytes
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch {
            session.endPost()
            return Response(status: .contentTooLarge, headers: [.contentLength: "0"])
        }
        guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
            session.endPost()
            session.end(reason: "POST body is not UTF-8")
            return Self.response(.badRequest)
        }
        if let refusal = session.post(text) { return Self.response(refusal) }
        return Response(
            status: .ok,
            headers: [.contentType: "text/html", .contentLength: "2", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: "ok"))
        )
    }

    /// Any other method: Engine.IO's "Bad handshake method".
    func refuse(_ request: Request, context: Context) async throws -> Response {
        Self.response(.badHandshakeMethod)
    }

    static func text(_ payload: String) -> Response {
        let body = ByteBuffer(string: payload)
        return Response(
            status: .ok,
            headers: [.contentType: "text/plain; charset=UTF-8", .contentLength: String(body.readableBytes), .cacheControl: "no-store"],
            body: .init(byteBuffer: body)
        )
    }

    static func response(_ error: EngineIOError) -> Response {
        let body = ByteBuffer(string: error.body)
        return Response(
            status: HTTPResponse.Status(code: error.httpStatus),
            headers: [.contentType: "application/json", .contentLength: String(body.readableBytes)],
            body: .init(byteBuffer: body)
        )
    }
}
