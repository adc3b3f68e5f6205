import NIOCore
import Synchronization
import SwitchboardCore

/// A WebSocket carrying an Engine.IO session: its transport from the start, or a probe that
/// takes over from long-polling. Frames go out through the event loop's outbox like every
/// WebSocket's; the heartbeat pings with Engine.IO's `2`.
final class EngineIOWebSocket: WebSocketReceiver, Sendable {
    private let connection: WebSocketHandler.Ref
    /// permessage-deflate was negotiated: large events go compressed.
    private let deflate: Bool
    private let outbox: LoopOutbox
    private let channel: any Channel
    /// Set once, when the session is made or found.
    private let sessionBox = Mutex<EngineIOSession?>(nil)

    static let enginePing = PushFrame(json: EngineIOPacket.ping("").text).wire

    private init(channel: any Channel, connection: WebSocketHandler.Ref, outbox: LoopOutbox) {
        self.channel = channel
        self.connection = connection
        self.deflate = connection.handler.deflate
        self.outbox = outbox
    }

    /// Sets up an upgraded channel (on its event loop) for `/socket.io/`: a new session, or a
    /// probe for the polling session `sid`.
    static func accept(channel: any Channel, server: SocketIOServer, handshake: SocketIOHandshake, deflate: Bool) throws {
        let environment = server.environment
        let handler = try environment.makeHandler(for: channel, deflate: deflate)
        let socket = EngineIOWebSocket(channel: channel, connection: handler.ref, outbox: environment.outboxes(channel.eventLoop))
        handler.attach(socket)
        try channel.pipeline.syncOperations.addHandler(handler)
        if let sid = handshake.sid {
            // An upgrade: the session must exist here and still be on polling.
            guard let session = server.session(sid), session.startProbe(socket) else {
                socket.close(.normal)
                return
            }
            socket.sessionBox.withLock { $0 = session }
        } else {
            let session = server.open(handshake: handshake, webSocket: socket)
            socket.sessionBox.withLock { $0 = session }
            socket.send(text: session.openPacket(upgrades: []))
        }
    }

    private var session: EngineIOSession? { sessionBox.withLock { $0 } }

    func send(text: String) {
        outbox.add(PushFrame(json: text).wire, for: connection)
    }

    func send(frame: ByteBuffer) {
        outbox.add(frame, for: connection)
    }

    /// A Socket.IO event shared by every subscriber of a delivery (compressed where
    /// permessage-deflate was negotiated and it pays).
    func deliver(_ event: ByteBuffer, frames: inout MessageFrames) {
        outbox.fanout(event, outbox.socketIO, deflate: deflate, frames: &frames, for: connection)
    }

    func close(_ reason: CloseReason) {
        outbox.close(connection, reason)
    }

    func hangUp() {
        channel.close(promise: nil)
    }

    func waitForRoom() async {
        await outbox.waitForRoom(connection)
    }

    // MARK: WebSocketReceiver (on the event loop)

    func received(_ message: InboundMessage) {
        session?.webSocket(self, received: message)
    }

    func rateLimited(_ message: InboundMessage, closing: Bool) {
        session?.webSocket(self, rateLimited: message, closing: closing)
    }

    func closing(_ reason: CloseReason) {
        if reason.code == 4100 { session?.server.environment.node.metrics.slowConsumerCloses.increment() }
    }

    func connectionClosed() {
        session?.webSocketClosed(self)
    }

    var heartbeatPing: ByteBuffer { Self.enginePing }
}
