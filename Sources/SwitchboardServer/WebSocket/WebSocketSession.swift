import Foundation
import Logging
import NIOCore
import Synchronization
import SwitchboardCore

/// One WebSocket connection's commands and subscriptions. Its event-loop side is a
/// `WebSocketHandler`; frames for it (pushes from the hub, replies, closes) go through its
/// loop's outbox, so they leave in the order they were produced. Commands run one after
/// another on a task that exists only while there are commands to run; an idle
/// connection has no task at all.
final class WebSocketSession: Subscriber {
    let clientID: String
    private let environment: WebSocketEnvironment
    private let channel: any Channel
    private let connection: NIOLoopBound<WebSocketHandler>
    private let outbox: LoopOutbox
    private var node: Node { environment.node }
    private var authenticator: Authenticator { environment.authenticator }
    private var logger: Logger { environment.logger }

    private struct State {
        var identity: Identity
        var channels: Set<String> = []
        /// The connection is gone: no new subscriptions.
        var closed = false
        /// The close code and reason the server sent, for the disconnect log line.
        var closedWith: (code: UInt16, reason: String)?
    }

    private struct Commands {
        var waiting: [InboundMessage] = []
        var running = false
    }

    private let state: Mutex<State>
    private let commands = Mutex(Commands())

    private init(channel: any Channel, connection: NIOLoopBound<WebSocketHandler>, environment: WebSocketEnvironment, identity: Identity) {
        self.clientID = Self.makeClientID()
        self.channel = channel
        self.connection = connection
        self.environment = environment
        self.outbox = environment.outboxes(channel.eventLoop)
        self.state = Mutex(State(identity: identity))
    }

    /// Sets up an upgraded channel (on its event loop): the frame handler, the session, and
    /// the welcome frame.
    static func accept(channel: any Channel, environment: WebSocketEnvironment, identity: Identity) throws {
        let raw = try RawFrameWriter.install(in: channel)
        let handler = WebSocketHandler(settings: environment, raw: raw, heartbeat: environment.heartbeats(channel.eventLoop))
        let session = WebSocketSession(
            channel: channel, connection: NIOLoopBound(handler, eventLoop: channel.eventLoop), environment: environment, identity: identity
        )
        handler.attach(session)
        try channel.pipeline.syncOperations.addHandler(handler)
        session.opened()
        if !environment.registry.add(session) { session.closeForRestart() }
    }

    private var identity: Identity { state.withLock { $0.identity } }

    private func setIdentity(_ identity: Identity) {
        state.withLock { $0.identity = identity }
        scheduleExpiry(identity)
    }

    // MARK: Outbound

    func send(_ frame: ByteBuffer) {
        outbox.add(.frame(WebSocketWire.frame(opcode: WebSocketWire.text, payload: frame)), for: connection)
    }

    func deliver(_ message: ChannelMessage, frame: PushFrame) {
        outbox.add(.frame(frame.wire), for: connection)
    }

    /// The session's own replies and errors: framed as they are encoded, with no second copy.
    private func send(_ text: String) {
        outbox.add(.frame(PushFrame(json: text).wire), for: connection)
    }

    /// Closes with `code` after the frames queued before it.
    private func close(code: UInt16, reason: String) {
        outbox.add(.close(code: code, reason: reason), for: connection)
    }

    func missed(channel: String) {
        close(code: 4100, reason: "missed messages of \(channel) on this node; reconnect and resume")
    }

    func waitForRoom() async {
        let connection = self.connection
        while channel.isActive {
            let room = try? await outbox.eventLoop.submit { connection.value.hasRoom }.get()
            if room ?? true { return }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    // MARK: Lifecycle

    private func opened() {
        logger.info("connected", metadata: ["client": "\(clientID)", "user": "\(identity.user ?? "-")", "transport": "websocket"])
        node.metrics.connectionOpened(transport: "websocket")
        send(ServerFrames.welcome(client: clientID, heartbeat: environment.heartbeatSeconds, version: SwitchboardVersion.current))
        scheduleExpiry(identity)
    }

    /// On a graceful shutdown: closes with 1012 after what is queued, so that the client
    /// reconnects at once (to another node, or to this one restarted).
    func closeForRestart() {
        close(code: 1012, reason: "server restarting; reconnect")
    }

    /// Drops the connection without a close handshake.
    func hangUp() {
        channel.close(promise: nil)
    }

    /// The server is closing the connection with `code` (called on the event loop).
    func closing(code: UInt16, reason: String) {
        state.withLock { $0.closedWith = (code, reason) }
        if code == 4100 { node.metrics.slowConsumerCloses.increment() }
    }

    /// The connection is gone (called on the event loop): leave every channel.
    func connectionClosed() {
        let (channels, identity, closed) = state.withLock { s in
            s.closed = true
            defer { s.channels = [] }
            return (s.channels, s.identity, s.closedWith)
        }
        for channel in channels { node.unsubscribe(self, channel: channel) }
        environment.registry.remove(self)
        node.metrics.connectionClosed(transport: "websocket")
        logger.info("disconnected", metadata: [
            "client": "\(clientID)", "user": "\(identity.user ?? "-")", "transport": "websocket",
            "code": "\(closed.map { String($0.code) } ?? "client")",
            "reason": "\(closed?.reason ?? "closed by the client")",
        ])
    }

    /// Closes with 4101 once the token's `exp` passes (a refresh moves it).
    private func scheduleExpiry(_ identity: Identity) {
        let connection = self.connection
        let expires = identity.expiresAtMillis
        outbox.eventLoop.execute { connection.value.expire(atMillis: expires) }
    }

    // MARK: Commands

    /// A message from the client (on the event loop): queued, and run after the ones before it.
    func received(_ message: InboundMessage) {
        let start = commands.withLock { c in
            c.waiting.append(message)
            defer { c.running = true }
            return !c.running
        }
        if start { Task { await self.runCommands() } }
    }

    private func runCommands() async {
        while let message = commands.withLock({ c -> InboundMessage? in
            if c.waiting.isEmpty {
                c.running = false
                return nil
            }
            return c.waiting.removeFirst()
        }) {
            await handle(message)
        }
    }

    /// A command over the rate limit (on the event loop): refused, or the connection closed (4129).
    func rateLimited(_ message: InboundMessage, closing: Bool) {
        node.metrics.rateLimitedCommands.increment()
        if closing {
            close(code: 4129, reason: "rate limited: too many commands; reconnect later")
        } else {
            refuseForRate(message)
        }
    }

    /// A `rate_limited` answer to a command over the limit: a reply if it has an id, else a push.
    private func refuseForRate(_ message: InboundMessage) {
        let error = ProtocolError(
            .rateLimited,
            "more than \(environment.commandsPerSecond) commands a second (burst \(environment.commandBurst)); slow down"
        )
        if case .text(let text) = message, let id = try? JSONValue.parse(text)["id"]?.intValue {
            send(ServerFrames.reply(id: id, error: error))
        } else {
            send(ServerFrames.error(error))
        }
    }

    private func handle(_ message: InboundMessage) async {
        switch message {
        case .binary:
            send(ServerFrames.error(.badRequest("binary frames are not supported: send JSON commands as text frames")))
        case .text(let text):
            let command: ClientCommand
            do {
                command = try ClientCommand.parse(Array(text.utf8))
            } catch {
                if let id = error.id {
                    send(ServerFrames.reply(id: id, error: error.error))
                } else {
                    send(ServerFrames.error(error.error))
                }
                return
            }
            do {
                try await execute(command)
            } catch let error as ProtocolError {
                send(ServerFrames.reply(id: command.id, error: error))
            } catch {
                logger.error("command failed", metadata: ["client": "\(clientID)", "op": "\(command.op)", "error": "\(error)"])
                send(ServerFrames.reply(id: command.id, error: ProtocolError(.internalError, "the server failed to run this command")))
            }
        }
    }

    private func execute(_ command: ClientCommand) async throws {
        switch command.op {
        case .ping:
            send(ServerFrames.reply(id: command.id, result: [:]))
        case .subscribe:
            try await subscribe(command)
        case .unsubscribe:
            let channel = try command.channel()
            if state.withLock({ $0.channels.remove(channel) }) != nil {
                node.unsubscribe(self, channel: channel)
            }
            send(ServerFrames.reply(id: command.id, result: [:]))
        case .publish:
            try await publish(command)
        case .history:
            try await history(command)
        case .auth:
            try await authenticate(command)
        case .refresh:
            try await refresh(command)
        case .presence:
            let channel = try command.channel()
            let policy = node.policy(forChannel: channel)
            guard identity.mayRead(channel: channel, policy: policy) else { throw identity.refusal("presence of \"\(channel)\"") }
            guard policy.presence else { throw ProtocolError.forbidden("presence is not enabled for the namespace of \"\(channel)\"") }
            let members = try await node.members(channel: channel).map(\.json)
            send(ServerFrames.reply(id: command.id, result: ["members": .array(members)]))
        }
    }

    /// `auth`: a token for a connection that opened without one. A bad token closes with 4001.
    private func authenticate(_ command: ClientCommand) async throws {
        let token = try command.requiredString("token")
        let verified: Identity
        do {
            verified = try await authenticator.identify(token)
        } catch {
            send(ServerFrames.reply(id: command.id, error: error))
            close(code: 4001, reason: "unauthorized: \(error.message)")
            return
        }
        setIdentity(verified)
        send(ServerFrames.reply(id: command.id, result: ["user": verified.user.map(JSONValue.string) ?? .null]))
    }

    /// `refresh`: a new token for the same user, keeping every subscription.
    private func refresh(_ command: ClientCommand) async throws {
        let token = try command.requiredString("token")
        let verified = try await authenticator.identify(token)
        let current = identity
        if case .token = current.role, verified.user != current.user {
            throw ProtocolError.forbidden("refresh must be for the same user (\"\(current.user ?? "")\")")
        }
        setIdentity(verified)
        let expires = verified.expiresAtMillis.map { JSONValue.string(Timestamp.format(milliseconds: $0)) } ?? .null
        send(ServerFrames.reply(id: command.id, result: ["expires_at": expires]))
    }

    private func subscribe(_ command: ClientCommand) async throws {
        let channel = try command.channel()
        let since = try command.since()
        let wantsPresence = try command.optionalBool("presence") ?? false
        guard identity.mayRead(channel: channel, policy: node.policy(forChannel: channel)) else {
            throw identity.refusal("subscribing to \"\(channel)\"")
        }
        if wantsPresence && !node.policy(forChannel: channel).presence {
            throw ProtocolError.forbidden("presence is not enabled for the namespace of \"\(channel)\"")
        }
        let limit = environment.subscriptions
        let added = try state.withLock { s throws(ProtocolError) -> Bool in
            if s.channels.contains(channel) || s.closed { return false }
            guard s.channels.count < limit else {
                throw ProtocolError(.tooLarge, "subscription limit reached: at most \(limit) channels a connection")
            }
            s.channels.insert(channel)
            return true
        }
        guard added else { throw ProtocolError(.conflict, "already subscribed to \"\(channel)\"") }
        let id = command.id
        let subscription: Node.Subscription
        do {
            let member = Member(client: clientID, user: identity.user, info: identity.info)
            subscription = try await node.subscribe(
                self, channel: channel, since: since, member: member, wantsPresence: wantsPresence
            ) { position, recovered in
                ByteBuffer(string: ServerFrames.reply(id: id, result: [
                    "channel": .string(channel), "epoch": .string(position.epoch),
                    "offset": .int(position.offset), "recovered": .bool(recovered),
                ]))
            }
        } catch {
            state.withLock { _ = $0.channels.remove(channel) }
            throw error
        }
        // The connection closed while this subscription was being set up: undo it.
        if state.withLock({ $0.closed }) { node.unsubscribe(self, channel: channel) }
        if !subscription.live {
            close(code: 4100, reason: "slow consumer: too many messages during catch-up; reconnect and resume")
        }
    }

    private func publish(_ command: ClientCommand) async throws {
        let channel = try command.channel()
        if Node.isReserved(channel: channel) {
            throw ProtocolError.forbidden("\"\(channel)\" is reserved: only the server publishes on collection: and sys: channels")
        }
        guard identity.mayPublishFromClient(channel: channel, policy: node.policy(forChannel: channel)) else {
            if identity.role == .development || identity.role == .anonymous, !node.policy(forChannel: channel).clientPublish {
                throw ProtocolError.forbidden("clients may not publish on \"\(channel)\": its namespace has client_publish off")
            }
            throw identity.refusal("publishing on \"\(channel)\"")
        }
        guard let data = command.fields["data"] else { throw ProtocolError.badRequest("publish needs \"data\"") }
        let key = try command.optionalString("idempotency_key")
        let result = try await node.publish(channel: channel, data: data, idempotencyKey: key)
        send(ServerFrames.reply(id: command.id, result: ["epoch": .string(result.position.epoch), "offset": .int(result.position.offset)]))
    }

    private func history(_ command: ClientCommand) async throws {
        let channel = try command.channel()
        guard identity.mayRead(channel: channel, policy: node.policy(forChannel: channel)) else {
            throw identity.refusal("reading \"\(channel)\"")
        }
        let since = try command.since()
        let limit = Int(try command.optionalInt("limit", in: 1...1000) ?? 100)
        send(ServerFrames.reply(id: command.id, rawResult: try await node.historyJSON(channel: channel, since: since, limit: limit)))
    }

    private static func makeClientID() -> String {
        let bytes = (0..<8).map { _ in UInt8.random(in: 0...255) }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}
