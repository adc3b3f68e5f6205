import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import SwitchboardCore

/// What an Engine.IO handshake brings: its request's credential and `?channels=`, the
/// client's address, and for an upgrade the session it is for.
struct SocketIOHandshake: Sendable {
    var sid: String?
    var credential: String?
    var channels: [String] = []
    var ip: String
    /// Where the client connected from, for the log.
    var transport: String

    /// Reads `EIO`, `transport`, `sid` and `?channels=` of a request to `/socket.io/`, whose
    /// credential (`Credentials`) is read by the caller; refuses what Engine.IO servers
    /// refuse, in their order.
    static func parse(
        target: String, credential: String?, ip: String, isUpgrade: Bool, isGet: Bool
    ) throws(EngineIOError) -> SocketIOHandshake {
        let transport = Credentials.queryParameter("transport", in: target)
        guard transport == "polling" || transport == "websocket" else { throw .transportUnknown }
        let sid = Credentials.queryParameter("sid", in: target)
        if sid == nil {
            guard isGet else { throw .badHandshakeMethod }
            if transport == "websocket" && !isUpgrade { throw .badRequest }
            guard Credentials.queryParameter("EIO", in: target) == "4" else { throw .unsupportedVersion }
        }
        if isUpgrade && transport != "websocket" { throw .badRequest }
        let channels = Credentials.queryParameter("channels", in: target)?.split(separator: ",").map(String.init) ?? []
        return SocketIOHandshake(
            sid: sid,
            credential: credential,
            channels: channels, ip: ip, transport: transport!
        )
    }
}

/// Socket.IO at `/socket.io/` (SPEC section 8): the node's Engine.IO sessions by id, the
/// heartbeat of the long-polling ones (one timer for all), and their bookkeeping. Its
/// `run` is the heartbeat, for as long as the server runs.
final class SocketIOServer: Service, Sendable {
    let environment: SessionEnvironment
    let settings: SocketIOSettings
    /// Timers of the sessions (token expiry).
    let eventLoop: any EventLoop
    private let sessions = Mutex<[String: EngineIOSession]>([:])

    init(environment: SessionEnvironment, settings: SocketIOSettings) {
        self.environment = environment
        self.settings = settings
        self.eventLoop = MultiThreadedEventLoopGroup.singleton.next()
    }

    /// Opens a session after an accepted handshake (its limits checked), on polling or on `webSocket`.
    func open(handshake: SocketIOHandshake, webSocket: EngineIOWebSocket?) -> EngineIOSession {
        var sid = Self.makeID()
        while session(sid) != nil { sid = Self.makeID() }
        let session = EngineIOSession(sid: sid, server: self, webSocket: webSocket, handshake: handshake)
        sessions.withLock { $0[sid] = session }
        environment.limiter.connectionOpened(ip: handshake.ip)
        environment.node.metrics.connectionOpened(transport: "socketio")
        if !environment.registry.add(session) { session.closeForRestart() }
        return session
    }

    func session(_ sid: String) -> EngineIOSession? {
        sessions.withLock { $0[sid] }
    }

    /// The namespace `/` connected: the client is who the log and the metrics see.
    func connected(_ engine: EngineIOSession, session: ClientSession) {
        environment.logger.info("connected", metadata: [
            "client": "\(session.clientID)", "user": "\(session.identity.user ?? "-")", "transport": "socketio",
            "sid": "\(engine.sid)",
        ])
    }

    func log(closing engine: EngineIOSession, reason: CloseReason) {
        environment.logger.debug("closing Socket.IO session", metadata: ["sid": "\(engine.sid)", "code": "\(reason.code)", "reason": "\(reason.reason)"])
    }

    /// A session ended.
    func remove(_ engine: EngineIOSession, reason: String) {
        guard sessions.withLock({ $0.removeValue(forKey: engine.sid) }) != nil else { return }
        environment.limiter.connectionClosed(ip: engine.ip)
        environment.node.metrics.connectionClosed(transport: "socketio")
        environment.registry.remove(engine)
        environment.logger.info("disconnected", metadata: ["transport": "socketio", "sid": "\(engine.sid)", "reason": "\(reason)"])
    }

    /// The heartbeat of the long-polling sessions (WebSocket ones are pinged by their loop's).
    func run() async throws {
        let interval = Duration.seconds(environment.heartbeatSeconds)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            let polling = sessions.withLock { $0.values.filter(\.isPolling) }
            for session in polling { session.heartbeatDue() }
        }
    }

    /// Session and socket ids: 15 random bytes, base64url (20 characters), as Engine.IO's.
    static func makeID() -> String {
        let bytes = (0..<15).map { _ in UInt8.random(in: 0...255) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }
}
