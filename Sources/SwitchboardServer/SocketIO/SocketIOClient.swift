import Foundation
import NIOCore
import Synchronization
import SwitchboardCore

/// The Socket.IO v5 side of an Engine.IO session (SPEC section 8): CONNECT with its
/// credentials and channels, emitted events as session commands, channel messages as
/// events named after their channel, and connection state recovery by offsets. Every
/// permission check is the `ClientSession`'s; this only speaks the wire format.
@_spi(Benchmarks) public final class SocketIOClient: SessionOutput {
    /// Weak: the session commands (and a subscription being set up) may outlive the
    /// Engine.IO session, which owns this; what they send then goes nowhere.
    private weak let engine: EngineIOSession?
    private let server: SocketIOServer
    private let recovery: Bool
    private let handshake: SocketIOHandshake
    private let commands = SerialQueue()

    private struct State {
        /// The client session, once the namespace `/` is connected.
        var session: ClientSession?
        /// Binary attachments still to come for a BINARY_EVENT or BINARY_ACK (refused).
        var attachments: (remaining: Int, ackID: Int64?)?
        /// Recovery: each channel's last position sent to the client, which every event's
        /// offset argument carries.
        var positions: [String: Position] = [:]
        var expiry: Scheduled<Void>?
        /// The Engine.IO connection is gone: no session may start.
        var ended = false
    }

    private let state = Mutex(State())

    init(engine: EngineIOSession, handshake: SocketIOHandshake) {
        self.engine = engine
        self.server = engine.server
        self.recovery = engine.server.settings.recovery
        self.handshake = handshake
    }

    // MARK: Packets from the client

    /// An Engine.IO message: one Socket.IO packet. Handled in order; an invalid packet ends
    /// the Engine.IO connection, as Socket.IO servers do.
    func received(_ text: String) {
        if state.withLock({ $0.attachments != nil }) {
            fail("text packet while binary attachments were due")
            return
        }
        let packet: SocketIOPacket
        do {
            packet = try SocketIOPacket.parse(text)
        } catch {
            fail("invalid Socket.IO packet: \(error)")
            return
        }
        // Attachments are counted at once: the binary packets that follow may arrive before
        // the commands queued ahead of this one have run.
        if packet.kind == .binaryEvent || packet.kind == .binaryAck {
            state.withLock { $0.attachments = (packet.attachments, packet.kind == .binaryEvent ? packet.ackID : nil) }
            return
        }
        commands.add { await self.handle(packet) }
    }

    /// A packet over the command rate (SPEC section 5, as on `/v1/ws`): an event that asked
    /// for an acknowledgement gets a `rate_limited` one and runs nothing; any other packet
    /// is no command and is taken as usual.
    func rateLimited(_ text: String) {
        guard let packet = try? SocketIOPacket.parse(text), packet.kind == .event else {
            received(text)
            return
        }
        if let id = packet.ackID { acknowledge(id, .failure(server.environment.commandRateRefusal)) }
    }

    /// A binary attachment: binary events are refused (SPEC section 8: JSON only), but their
    /// attachments are read so that the connection goes on.
    func received(binary: [UInt8]) {
        let refused = state.withLock { s -> (done: Bool, ackID: Int64?)? in
            guard let attachments = s.attachments else { return nil }
            let remaining = attachments.remaining - 1
            s.attachments = remaining > 0 ? (remaining, attachments.ackID) : nil
            return (remaining == 0, attachments.ackID)
        }
        guard let refused else {
            fail("binary packet without an event")
            return
        }
        if refused.done, let id = refused.ackID {
            commands.add {
                self.acknowledge(id, .failure(.badRequest("binary attachments are not supported: send JSON arguments")))
            }
        }
    }

    private func handle(_ packet: SocketIOPacket) async {
        let session = state.withLock { $0.session }
        switch packet.kind {
        case .connect:
            guard packet.namespace == "/" else {
                send(SocketIOPacket(kind: .connectError, namespace: packet.namespace, payload: ["message": "Invalid namespace"]))
                return
            }
            guard session == nil else {
                fail("CONNECT twice")
                return
            }
            await connect(auth: packet.payload?.objectValue ?? [:])
        case .disconnect:
            // The client leaves the namespace; the Engine.IO connection stays.
            guard packet.namespace == "/", let session else { return }
            state.withLock { $0.session = nil }
            session.ended()
        case .event:
            guard packet.namespace == "/", let session, case .array(let args) = packet.payload else {
                fail("event outside a connected namespace")
                return
            }
            await event(args, ackID: packet.ackID, session: session)
        case .binaryEvent, .binaryAck:
            break  // Counted when it arrived (`received`).
        case .ack:
            break  // The server asks for no acknowledgements.
        case .connectError:
            fail("CONNECT_ERROR from the client")
        }
    }

    // MARK: Connecting

    /// CONNECT to `/`: credentials from the CONNECT payload, else from the handshake; the
    /// configured channels, `auth.channels` and `?channels=` joined; recovery when asked.
    private func connect(auth: [String: JSONValue]) async {
        let credential = auth["token"]?.stringValue ?? handshake.credential
        let identity: Identity
        do {
            identity = try await server.environment.authenticator.identify(credential)
        } catch {
            refuse(error)
            return
        }
        var channels = server.settings.channels
        if case .array(let extra) = auth["channels"] { channels += extra.compactMap(\.stringValue) }
        channels += handshake.channels
        var unique: [String] = []
        for channel in channels where !unique.contains(channel) { unique.append(channel) }
        let session = server.environment.makeSession(identity: identity, output: self)
        do {
            for channel in unique {
                _ = try Access.channel(channel)
                try session.access.check(.subscribe(presence: false), channel: channel)
            }
        } catch {
            refuse(error)
            return
        }
        // The Engine.IO connection may have ended while the credential was verified.
        let open = state.withLock { s in
            if !s.ended { s.session = session }
            return !s.ended
        }
        guard open, let engine else {
            session.ended()
            return
        }
        server.connected(engine, session: session)
        expires(atMillis: identity.expiresAtMillis)
        let sid = SocketIOServer.makeID()
        guard recovery else {
            send(SocketIOPacket(kind: .connect, payload: ["sid": .string(sid)]))
            await join(unique, session: session)
            return
        }
        // Recovery: the offset of the last event the client saw (or, if it saw none, its
        // pid) holds every channel's position: subscribe from there, send what was missed,
        // and only then the CONNECT answer, which says whether all of it was recovered.
        let clientPID = auth["pid"]?.stringValue
        let saved = (auth["offset"]?.stringValue).map { PositionList.parse($0) }
            ?? clientPID.map { PositionList.parse($0) } ?? [:]
        var recovered = clientPID != nil && !saved.isEmpty
        // Every event's offset carries every channel: the ones not yet resubscribed keep
        // their saved positions meanwhile, so that an offset from the replay resumes too.
        state.withLock { $0.positions = saved }
        for channel in Set(saved.keys).union(unique).sorted() {
            do {
                let subscription = try await session.subscribe(channel, since: saved[channel])
                if saved[channel] == nil || !subscription.recovered { recovered = false }
            } catch {
                recovered = false
                state.withLock { _ = $0.positions.removeValue(forKey: channel) }
                server.environment.logger.info("Socket.IO recovery could not subscribe", metadata: ["channel": "\(channel)", "error": "\(error)"])
            }
        }
        let pid = recovered ? clientPID! : PositionList.format(state.withLock { $0.positions }, order: unique)
        send(SocketIOPacket(kind: .connect, payload: ["sid": .string(sid), "pid": .string(pid)]))
    }

    /// Subscribes the channels joined at connect, after the CONNECT answer.
    private func join(_ channels: [String], session: ClientSession) async {
        for channel in channels {
            do {
                try await session.subscribe(channel, since: nil)
            } catch {
                server.environment.logger.warning("Socket.IO connect could not subscribe", metadata: ["channel": "\(channel)", "error": "\(error)"])
                engine?.close(.internalError("could not join \(channel)"))
                return
            }
        }
    }

    /// CONNECT_ERROR `{"message","data":{"code"}}`: the client's `connect_error`.
    private func refuse(_ error: any Error) {
        let problem = error as? ProtocolError ?? ProtocolError(.internalError, "the server could not connect this client")
        send(SocketIOPacket(kind: .connectError, payload: [
            "message": .string(problem.message), "data": ["code": .string(problem.code.rawValue)],
        ]))
    }

    // MARK: Events

    /// An emitted event: `subscribe`, `unsubscribe`, `history` and `presence` are commands;
    /// any other name publishes its first argument on the channel of that name.
    private func event(_ args: [JSONValue], ackID: Int64?, session: ClientSession) async {
        guard case .string(let name) = args.first else {
            if let ackID { acknowledge(ackID, .failure(.badRequest("the event name must be a string"))) }
            return
        }
        let argument = args.count > 1 ? args[1] : .null
        let command: SessionCommand
        do {
            command = try Self.command(name, argument)
        } catch {
            if let ackID { acknowledge(ackID, .failure(error)) }
            return
        }
        await session.run(command) { result in
            if let ackID { self.acknowledge(ackID, result) }
        }
    }

    /// The session command an event stands for (SPEC section 8): the four command events
    /// carry the fields of `/v1/ws`'s commands and are checked by the same rules, except that
    /// `since` may also be `"EPOCH:OFFSET"`; any other name publishes its argument.
    static func command(_ name: String, _ argument: JSONValue) throws(ProtocolError) -> SessionCommand {
        let op: ClientCommand.Op
        switch name {
        case "subscribe": op = .subscribe
        case "unsubscribe": op = .unsubscribe
        case "history": op = .history
        case "presence": op = .presence
        default: return .publish(channel: try Access.channel(name), data: argument, idempotencyKey: nil)
        }
        guard case .object(var fields) = argument else { throw .badRequest("\(name) needs {\"channel\": string}") }
        if case .string(let text) = fields["since"] {
            guard let position = Position(text) else { throw .badRequest("\"since\" must be \"EPOCH:OFFSET\" or {\"epoch\",\"offset\"}") }
            fields["since"] = .object(["epoch": .string(position.epoch), "offset": .int(position.offset)])
        }
        return try SessionCommand(ClientCommand(id: 0, op: op, fields: fields))
    }

    /// ACK `[result]`, or `[{"error":{…}}]` for a refusal.
    private func acknowledge(_ id: Int64, _ result: Result<String, ProtocolError>) {
        let argument: String
        switch result {
        case .success(let json): argument = json
        case .failure(let error): argument = JSONValue.object(["error": error.json]).serialized
        }
        engine?.send("43\(id)[\(argument)]")
    }

    /// A protocol violation: the Engine.IO connection ends (as Socket.IO's servers do).
    private func fail(_ reason: String) {
        engine?.end(reason: reason, close: .protocolError(reason))
    }

    private func send(_ packet: SocketIOPacket) {
        engine?.send(EngineIOPacket.message(packet.encoded).text)
    }

    /// DISCONNECT: the server ends the socket, and the client does not reconnect.
    func sendDisconnect() {
        if state.withLock({ $0.session != nil }) { send(SocketIOPacket(kind: .disconnect)) }
    }

    /// The Engine.IO connection is gone.
    func ended() {
        let (session, expiry) = state.withLock { s in
            defer {
                s.ended = true
                s.session = nil
                s.expiry = nil
            }
            return (s.session, s.expiry)
        }
        expiry?.cancel()
        session?.ended()
    }

    // MARK: SessionOutput

    func deliver(_ message: ChannelMessage, frames: inout MessageFrames) {
        guard let engine else { return }
        guard recovery else {
            let frame = frames.encoded(.socketIOEvent) { PushFrame(json: Self.eventPacket($0)).wire }
            if let webSocket = engine.webSocket {
                webSocket.deliver(frame, frames: &frames)
                return
            }
            let packet = frames.encoded(.socketIOPacket) { ByteBuffer(string: Self.eventPacket($0)) }
            engine.send(String(buffer: packet), webSocketFrame: frame)
            return
        }
        // With recovery each event also carries the positions of all the client's channels:
        // the shared start of the event, and this connection's offset after it.
        let prefix = frames.encoded(.socketIOEventPrefix) { ByteBuffer(string: Self.eventPrefix($0)) }
        state.withLock { s in
            s.positions[message.channel] = message.position
            let offset = PositionList.format(s.positions, order: s.positions.keys.sorted())
            let text = String(buffer: prefix) + "," + JSONValue.quoted(offset) + "]"
            engine.send(text, webSocketFrame: engine.isPolling ? nil : PushFrame(json: text).wire)
        }
    }

    /// `42["channel",data]`: a channel message as a Socket.IO event (an Engine.IO message).
    @_spi(Benchmarks) public static func eventPacket(_ message: ChannelMessage) -> String {
        eventPrefix(message) + "]"
    }

    /// `42["channel",data` without its end.
    static func eventPrefix(_ message: ChannelMessage) -> String {
        var out = "42["
        out.reserveCapacity(message.channel.utf8.count + message.data.utf8.count + 8)
        JSONValue.writeString(message.channel, to: &out)
        out += ","
        out += message.data
        return out
    }

    /// Joins and leaves as events `join` and `leave` with `{"channel","member"}`.
    func presence(_ change: PresenceChange) {
        engine?.send("42[\"\(change.kind.rawValue)\",{\"channel\":\(JSONValue.quoted(change.channel)),\"member\":\(change.memberJSON)}]")
    }

    func close(_ reason: CloseReason) {
        engine?.close(reason)
    }

    func waitForRoom() async {
        await engine?.waitForRoom()
    }

    /// Recovery: where a channel's events start, before its missed messages are sent.
    func subscribed(_ channel: String, at position: Position) {
        guard recovery else { return }
        state.withLock { $0.positions[channel] = position }
    }

    func unsubscribed(_ channel: String) {
        guard recovery else { return }
        state.withLock { _ = $0.positions.removeValue(forKey: channel) }
    }

    func expires(atMillis millis: Int64?) {
        guard let engine else { return }
        let scheduled = millis.map { millis in
            server.eventLoop.scheduleTask(in: .milliseconds(max(0, millis - Timestamp.nowMilliseconds()))) {
                engine.close(.tokenExpired)
            }
        }
        state.withLock { s in
            s.expiry?.cancel()
            s.expiry = scheduled
        }
    }
}
