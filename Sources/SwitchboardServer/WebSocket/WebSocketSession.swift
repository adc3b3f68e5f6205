import Foundation
import HummingbirdWebSocket
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
    private let configuration: ServerConfiguration
    private let queue: OutboundQueue
    private let logger: Logger
    private let channels = Mutex<Set<String>>([])

    init(broker: Broker, configuration: ServerConfiguration, logger: Logger) {
        self.clientID = Self.makeClientID()
        self.broker = broker
        self.configuration = configuration
        self.queue = OutboundQueue(limitBytes: configuration.limits.queueBytes)
        self.logger = logger
    }

    func send(_ frame: ByteBuffer) {
        queue.push(frame)
    }

    private func send(_ text: String) {
        queue.push(ByteBuffer(string: text))
    }

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        logger.info("connected", metadata: ["client": "\(clientID)", "transport": "websocket"])
        send(ServerFrames.welcome(client: clientID, heartbeat: configuration.heartbeatSeconds, version: SwitchboardVersion.current))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.writeLoop(outbound) }
            do {
                for try await message in inbound.messages(maxSize: configuration.limits.messageBytes) {
                    await handle(message)
                }
            } catch {
                logger.debug("read ended", metadata: ["client": "\(clientID)", "error": "\(error)"])
            }
            queue.finish()
        }
        for channel in channels.withLock({ $0 }) {
            broker.unsubscribe(self, channel: channel)
        }
        logger.info("disconnected", metadata: ["client": "\(clientID)", "transport": "websocket"])
    }

    private func writeLoop(_ outbound: WebSocketOutboundWriter) async {
        while true {
            switch await queue.next() {
            case .frames(let frames):
                for frame in frames {
                    do {
                        try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: frame)))
                    } catch {
                        queue.finish()
                        return
                    }
                    queue.didWrite(bytes: frame.readableBytes)
                }
            case .close(let code, let reason):
                logger.info("closing", metadata: ["client": "\(clientID)", "code": "\(code)", "reason": "\(reason)"])
                try? await outbound.close(WebSocketErrorCode(codeNumber: Int(code)), reason: reason)
                queue.finish()
                return
            case .finished:
                return
            }
        }
    }

    // MARK: Commands

    private func handle(_ message: WebSocketMessage) async {
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
            // Development mode: every connection may do everything, so any token is accepted.
            _ = try command.requiredString("token")
            send(ServerFrames.reply(id: command.id, result: ["user": .null]))
        case .refresh:
            _ = try command.requiredString("token")
            send(ServerFrames.reply(id: command.id, result: ["expires_at": .null]))
        case .presence:
            _ = try command.channel()
            throw ProtocolError.badRequest("presence is not supported by this server version")
        }
    }

    private func subscribe(_ command: ClientCommand) async throws {
        let channel = try command.channel()
        let since = try command.since()
        let wantsPresence = try command.optionalBool("presence") ?? false
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
            subscription = try await broker.subscribe(self, channel: channel, since: since) { position, recovered in
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
        guard broker.policy(forChannel: channel).clientPublish else {
            throw ProtocolError.forbidden("clients may not publish on \"\(channel)\": its namespace has client_publish off")
        }
        guard let data = command.fields["data"] else { throw ProtocolError.badRequest("publish needs \"data\"") }
        let key = try command.optionalString("idempotency_key")
        let result = try await broker.publish(channel: channel, data: data, idempotencyKey: key)
        send(ServerFrames.reply(id: command.id, result: ["epoch": .string(result.position.epoch), "offset": .int(result.position.offset)]))
    }

    private func history(_ command: ClientCommand) async throws {
        let channel = try command.channel()
        let since = try command.since()
        let limit = Int(try command.optionalInt("limit", in: 1...1000) ?? 100)
        send(ServerFrames.reply(id: command.id, rawResult: try await broker.historyJSON(channel: channel, since: since, limit: limit)))
    }

    private static func makeClientID() -> String {
        let bytes = (0..<8).map { _ in UInt8.random(in: 0...255) }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}
