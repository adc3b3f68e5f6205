import Foundation
import ServiceLifecycle
import Logging
import NIOCore
import NIOWebSocket
import Synchronization
import SwitchboardCore

/// One WebSocket connection: reads commands in order and answers each with one reply, while
/// a writer task drains the connection's bounded outbound queue, where the hub's pushes and
/// the replies meet in the order they were produced.
final class WebSocketSession: Subscriber {
    let clientID: String
    private let broker: Broker
    private let authenticator: Authenticator
    private let configuration: ServerConfiguration
    private let queue: OutboundQueue
    private let logger: Logger
    private let channels = Mutex<Set<String>>([])
    private let identityBox: Mutex<Identity>
    /// Closes the connection with 4101 when the token expires without a refresh.
    private let expiryWatch = Mutex<Task<Void, Never>?>(nil)
    /// The close code and reason the server sent, for the disconnect log line.
    private let closedWith = Mutex<(code: UInt16, reason: String)?>(nil)

    init(broker: Broker, authenticator: Authenticator, identity: Identity, configuration: ServerConfiguration, logger: Logger) {
        self.clientID = Self.makeClientID()
        self.broker = broker
        self.authenticator = authenticator
        self.identityBox = Mutex(identity)
        self.configuration = configuration
        self.queue = OutboundQueue(limitBytes: configuration.limits.queueBytes)
        self.logger = logger
    }

    private var identity: Identity { identityBox.withLock { $0 } }

    private func setIdentity(_ identity: Identity) {
        identityBox.withLock { $0 = identity }
        watchExpiry()
    }

    func send(_ frame: ByteBuffer) {
        queue.push(frame)
    }

    func waitForRoom() async {
        await queue.waitForRoom(atMost: queue.limitBytes / 2)
    }

    private func send(_ text: String) {
        queue.push(ByteBuffer(string: text))
    }

    /// On a graceful shutdown: close with 1012 after what is queued, so clients reconnect at once.
    func drain() {
        queue.close(code: 1012, reason: "server restarting; reconnect")
    }

    /// Runs the connection. A protocol error on the inbound side (invalid UTF-8, an oversize
    /// fragmented message) is rethrown after cleanup, so the connection closes with its code
    /// (1007, 1009). A graceful shutdown closes it with 1012 after what is queued.
    func run(messages: InboundMessages, writer: FrameWriter) async throws {
        logger.info("connected", metadata: ["client": "\(clientID)", "user": "\(identity.user ?? "-")", "transport": "websocket"])
        send(ServerFrames.welcome(client: clientID, heartbeat: configuration.heartbeatSeconds, version: SwitchboardVersion.current))
        watchExpiry()
        var readError: (any Error)?
        broker.metrics.connectionOpened(transport: "websocket")
        defer { broker.metrics.connectionClosed(transport: "websocket") }
        var messages = messages
        await withGracefulShutdownHandler {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.writeLoop(writer) }
            var commands = TokenBucket(rate: configuration.limits.commandsPerSecond, burst: configuration.limits.commandBurst)
            var refusedInARow = 0
            do {
                while let message = try await messages.next() {
                    guard commands.take() else {
                        refusedInARow += 1
                        broker.metrics.rateLimitedCommands.increment()
                        if refusedInARow > configuration.limits.commandBurst {
                            queue.close(code: 4129, reason: "rate limited: too many commands; reconnect later")
                        } else {
                            refuseForRate(message)
                        }
                        continue
                    }
                    refusedInARow = 0
                    await handle(message)
                }
            } catch {
                logger.debug("read ended", metadata: ["client": "\(clientID)", "error": "\(error)"])
                readError = error
            }
            queue.finish()
        }
        } onGracefulShutdown: {
            self.drain()
        }
        expiryWatch.withLock { $0?.cancel() }
        for channel in channels.withLock({ $0 }) {
            broker.unsubscribe(self, channel: channel)
        }
        let closed = closedWith.withLock { $0 }
        logger.info("disconnected", metadata: [
            "client": "\(clientID)", "user": "\(identity.user ?? "-")", "transport": "websocket",
            "code": "\(closed.map { String($0.code) } ?? (readError == nil ? "client" : "protocol error"))",
            "reason": "\(closed?.reason ?? readError.map { "\($0)" } ?? "closed by the client")",
        ])
        if let readError { throw readError }
    }

    private func writeLoop(_ writer: FrameWriter) async {
        while true {
            switch await queue.next() {
            case .frames(let frames):
                // Everything queued since the last write goes out with one flush.
                do {
                    try await writer.write(frames)
                } catch {
                    queue.finish()
                    return
                }
                queue.didWrite(bytes: frames.reduce(0) { $0 + $1.readableBytes })
            case .close(let code, let reason):
                closedWith.withLock { $0 = (code, reason) }
                if code == 4100 { broker.metrics.slowConsumerCloses.increment() }
                await writer.close(code: code, reason: reason)
                queue.finish()
                return
            case .finished:
                return
            }
        }
    }

    /// A `rate_limited` answer to a command over the limit: a reply if it has an id, else a push.
    private func refuseForRate(_ message: InboundMessage) {
        let error = ProtocolError(
            .rateLimited,
            "more than \(configuration.limits.commandsPerSecond) commands a second (burst \(configuration.limits.commandBurst)); slow down"
        )
        if case .text(let text) = message, let id = try? JSONValue.parse(text)["id"]?.intValue {
            send(ServerFrames.reply(id: id, error: error))
        } else {
            send(ServerFrames.error(error))
        }
    }

    /// Closes the connection with 4101 once the token's `exp` passes (a refresh moves it).
    private func watchExpiry() {
        guard identity.expiresAtMillis != nil else { return }
        expiryWatch.withLock { task in
            guard task == nil else { return }
            task = Task { [weak self] in
                while let self, let expires = self.identity.expiresAtMillis {
                    let wait = expires - Timestamp.nowMilliseconds()
                    if wait <= 0 {
                        self.queue.close(code: 4101, reason: "token expired; reconnect with a new token")
                        return
                    }
                    do { try await Task.sleep(for: .milliseconds(wait)) } catch { return }
                }
            }
        }
    }

    // MARK: Commands

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
            if channels.withLock({ $0.remove(channel) }) != nil {
                broker.unsubscribe(self, channel: channel)
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
            let policy = broker.policy(forChannel: channel)
            guard identity.mayRead(channel: channel, policy: policy) else { throw identity.refusal("presence of \"\(channel)\"") }
            guard policy.presence else { throw ProtocolError.forbidden("presence is not enabled for the namespace of \"\(channel)\"") }
            let members = broker.hub.members(channel: channel).map(\.json)
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
            queue.close(code: 4001, reason: "unauthorized: \(error.message)")
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
        guard identity.mayRead(channel: channel, policy: broker.policy(forChannel: channel)) else {
            throw identity.refusal("subscribing to \"\(channel)\"")
        }
        if wantsPresence && !broker.policy(forChannel: channel).presence {
            throw ProtocolError.forbidden("presence is not enabled for the namespace of \"\(channel)\"")
        }
        let limit = configuration.limits.subscriptions
        let added = try channels.withLock { set throws(ProtocolError) -> Bool in
            if set.contains(channel) { return false }
            guard set.count < limit else {
                throw ProtocolError(.tooLarge, "subscription limit reached: at most \(limit) channels a connection")
            }
            set.insert(channel)
            return true
        }
        guard added else { throw ProtocolError(.conflict, "already subscribed to \"\(channel)\"") }
        let id = command.id
        let subscription: Broker.Subscription
        do {
            let member = Member(client: clientID, user: identity.user, info: identity.info)
            subscription = try await broker.subscribe(
                self, channel: channel, since: since, member: member, wantsPresence: wantsPresence
            ) { position, recovered in
                ByteBuffer(string: ServerFrames.reply(id: id, result: [
                    "channel": .string(channel), "epoch": .string(position.epoch),
                    "offset": .int(position.offset), "recovered": .bool(recovered),
                ]))
            }
        } catch {
            channels.withLock { _ = $0.remove(channel) }
            throw error
        }
        if !subscription.live {
            queue.close(code: 4100, reason: "slow consumer: too many messages during catch-up; reconnect and resume")
        }
    }

    private func publish(_ command: ClientCommand) async throws {
        let channel = try command.channel()
        if Broker.isReserved(channel: channel) {
            throw ProtocolError.forbidden("\"\(channel)\" is reserved: only the server publishes on collection: and sys: channels")
        }
        guard identity.mayPublishFromClient(channel: channel, policy: broker.policy(forChannel: channel)) else {
            if identity.role == .development || identity.role == .anonymous, !broker.policy(forChannel: channel).clientPublish {
                throw ProtocolError.forbidden("clients may not publish on \"\(channel)\": its namespace has client_publish off")
            }
            throw identity.refusal("publishing on \"\(channel)\"")
        }
        guard let data = command.fields["data"] else { throw ProtocolError.badRequest("publish needs \"data\"") }
        let key = try command.optionalString("idempotency_key")
        let result = try await broker.publish(channel: channel, data: data, idempotencyKey: key)
        send(ServerFrames.reply(id: command.id, result: ["epoch": .string(result.position.epoch), "offset": .int(result.position.offset)]))
    }

    private func history(_ command: ClientCommand) async throws {
        let channel = try command.channel()
        guard identity.mayRead(channel: channel, policy: broker.policy(forChannel: channel)) else {
            throw identity.refusal("reading \"\(channel)\"")
        }
        let since = try command.since()
        let limit = Int(try command.optionalInt("limit", in: 1...1000) ?? 100)
        send(ServerFrames.reply(id: command.id, rawResult: try await broker.historyJSON(channel: channel, since: since, limit: limit)))
    }

    private static func makeClientID() -> String {
        let bytes = (0..<8).map { _ in UInt8.random(in: 0...255) }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}
