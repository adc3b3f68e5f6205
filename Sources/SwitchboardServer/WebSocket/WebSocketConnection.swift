import Foundation
import Logging
import NIOCore
import Synchronization
import SwitchboardCore

/// `/v1/ws` (SPEC section 3): the adapter between a `WebSocketHandler` (frames on the event
/// loop) and a `ClientSession` (commands, subscriptions, permissions). It parses JSON
/// command frames, answers each with a `reply`, and writes pushes; everything for the
/// client goes through its loop's outbox, so frames leave in the order they were made.
/// Commands run one after another on a task that exists only while there are commands to
/// run; an idle connection has no task at all.
final class WebSocketConnection: SessionOutput, WebSocketReceiver, DrainableConnection {
    private let environment: SessionEnvironment
    private let channel: any Channel
    private let connection: WebSocketHandler.Ref
    /// permessage-deflate was negotiated: large messages go compressed.
    private let deflate: Bool
    private let outbox: LoopOutbox
    /// The client's address, counted against `connections_per_ip` while the connection is open.
    private let ip: String
    /// Set once in `accept`, before any frame is read.
    private let sessionBox = Mutex<ClientSession?>(nil)
    private var session: ClientSession { sessionBox.withLock { $0! } }
    private var logger: Logger { environment.logger }

    /// Commands run one after another, answered in order.
    private let commands = SerialQueue()
    /// The close code and reason the server sent, for the disconnect log line.
    private let closedWith = Mutex<CloseReason?>(nil)

    private init(channel: any Channel, connection: WebSocketHandler.Ref, environment: SessionEnvironment, ip: String) {
        self.channel = channel
        self.ip = ip
        self.connection = connection
        self.deflate = connection.handler.deflate
        self.environment = environment
        self.outbox = environment.outboxes(channel.eventLoop)
    }

    /// Sets up an upgraded channel (on its event loop): the frame handler, the session, and
    /// the welcome frame.
    static func accept(channel: any Channel, environment: SessionEnvironment, identity: Identity, ip: String, deflate: Bool) throws {
        let handler = try environment.makeHandler(for: channel, deflate: deflate)
        let connection = WebSocketConnection(channel: channel, connection: handler.ref, environment: environment, ip: ip)
        let session = environment.makeSession(identity: identity, output: connection)
        connection.sessionBox.withLock { $0 = session }
        handler.attach(connection)
        try channel.pipeline.syncOperations.addHandler(handler)
        connection.opened()
        if !environment.registry.add(connection) { connection.closeForRestart() }
    }

    // MARK: SessionOutput

    func deliver(_ message: ChannelMessage, frames: inout MessageFrames) {
        outbox.fanout(frames.webSocket().wire, outbox.webSocket, deflate: deflate, frames: &frames, for: connection)
    }

    func presence(_ change: PresenceChange) {
        send(change.json)
    }

    func close(_ reason: CloseReason) {
        outbox.close(connection, reason)
    }

    func waitForRoom() async {
        await outbox.waitForRoom(connection)
    }

    func expires(atMillis millis: Int64?) {
        let connection = self.connection
        outbox.eventLoop.execute { connection.handler.expire(atMillis: millis) }
    }

    /// A frame of ours (a reply, an error, a welcome): framed as it is encoded, no second copy.
    private func send(_ text: String) {
        outbox.add(PushFrame(json: text).wire, for: connection)
    }

    // MARK: Lifecycle

    private func opened() {
        let session = self.session
        logger.info("connected", metadata: ["client": "\(session.clientID)", "user": "\(session.identity.user ?? "-")", "transport": "websocket"])
        environment.node.metrics.connectionOpened(transport: "websocket")
        environment.limiter.connectionOpened(ip: ip)
        send(ServerFrames.welcome(client: session.clientID, heartbeat: environment.heartbeatSeconds, version: SwitchboardVersion.current))
        expires(atMillis: session.identity.expiresAtMillis)
    }

    func closeForRestart() {
        close(.restart)
    }

    func hangUp() {
        channel.close(promise: nil)
    }

    // MARK: WebSocketReceiver (on the event loop)

    func closing(_ reason: CloseReason) {
        closedWith.withLock { $0 = reason }
        if reason.code == 4100 { environment.node.metrics.slowConsumerCloses.increment() }
    }

    func connectionClosed() {
        let session = self.session
        session.ended()
        environment.registry.remove(self)
        environment.node.metrics.connectionClosed(transport: "websocket")
        environment.limiter.connectionClosed(ip: ip)
        let closed = closedWith.withLock { $0 }
        logger.info("disconnected", metadata: [
            "client": "\(session.clientID)", "user": "\(session.identity.user ?? "-")", "transport": "websocket",
            "code": "\(closed.map { String($0.code) } ?? "client")",
            "reason": "\(closed?.reason ?? "closed by the client")",
        ])
    }

    /// A message from the client: queued, and run after the ones before it.
    func received(_ message: InboundMessage) {
        commands.add { await self.handle(message) }
    }

    func rateLimited(_ message: InboundMessage, closing: Bool) {
        environment.node.metrics.rateLimitedCommands.increment()
        if closing {
            close(.rateLimited)
            return
        }
        let error = environment.commandRateRefusal
        if case .text(let text) = message, let id = try? JSONValue.parse(text)["id"]?.intValue {
            send(ServerFrames.reply(id: id, error: error))
        } else {
            send(ServerFrames.error(error))
        }
    }

    // MARK: Commands

    private func handle(_ message: InboundMessage) async {
        guard case .text(let text) = message else {
            send(ServerFrames.error(.badRequest("binary frames are not supported: send JSON commands as text frames")))
            return
        }
        let id: Int64
        let command: SessionCommand
        do {
            let parsed = try ClientCommand.parse(Array(text.utf8))
            id = parsed.id
            do {
                command = try SessionCommand(parsed)
            } catch {
                send(ServerFrames.reply(id: id, error: error))
                return
            }
        } catch {
            send(error.id.map { ServerFrames.reply(id: $0, error: error.error) } ?? ServerFrames.error(error.error))
            return
        }
        await session.run(command) { result in
            switch result {
            case .success(let json): self.send(ServerFrames.reply(id: id, rawResult: json))
            case .failure(let error): self.send(ServerFrames.reply(id: id, error: error))
            }
        }
    }
}
