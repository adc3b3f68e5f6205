import Foundation
import Logging
import NIOCore
import Synchronization
import SwitchboardCore

/// One Engine.IO v4 connection (the transport of a Socket.IO client, SPEC section 8): HTTP
/// long-polling, a WebSocket, or polling upgraded to a WebSocket. It carries packets both
/// ways and keeps the heartbeat; what the packets mean is its `SocketIOClient`'s business.
///
/// Polling: packets for the client wait in a bounded queue until a GET takes them (at most
/// 16 a response, as python-engineio reads no more); a GET with nothing to take is parked
/// until there is. Upgrade: a WebSocket with this session's id answers `2probe` with
/// `3probe`, the parked GET is released with a `noop`, and from the client's `5` on,
/// everything goes over the WebSocket.
final class EngineIOSession: DrainableConnection {
    enum PollAnswer: Sendable {
        case payload(String)
        case error(EngineIOError)
    }

    private enum Transport {
        case polling
        case webSocket(EngineIOWebSocket)
        case closed
    }

    private struct State {
        var transport: Transport
        /// A WebSocket probing to take over from polling.
        var probe: EngineIOWebSocket?
        var queue: [String] = []
        var queueBytes = 0
        var parked: CheckedContinuation<PollAnswer, Never>?
        var posting = false
        /// A ping went out and no pong (or other packet) came back yet.
        var awaitingPong = false
        /// The command rate of the packets that come over POST.
        var commands: CommandRate
        /// The session ends once the next GET has taken what is queued (a close packet).
        var endAfterNextPoll = false
    }

    /// Most packets in one polling response (python-engineio refuses more).
    static let maxPacketsPerPoll = 16

    let sid: String
    let server: SocketIOServer
    /// The client's address (per-IP limits).
    let ip: String
    private let clientBox = Mutex<SocketIOClient?>(nil)
    private let state: Mutex<State>

    /// The Socket.IO side, made once in `init`.
    var client: SocketIOClient { clientBox.withLock { $0! } }

    init(sid: String, server: SocketIOServer, webSocket: EngineIOWebSocket?, handshake: SocketIOHandshake) {
        self.sid = sid
        self.server = server
        self.ip = handshake.ip
        let limits = server.environment
        state = Mutex(State(
            transport: webSocket.map { .webSocket($0) } ?? .polling,
            commands: CommandRate(perSecond: limits.commandsPerSecond, burst: limits.commandBurst)
        ))
        let client = SocketIOClient(engine: self, handshake: handshake)
        clientBox.withLock { $0 = client }
    }

    /// The WebSocket, once it is the transport.
    var webSocket: EngineIOWebSocket? {
        state.withLock { if case .webSocket(let socket) = $0.transport { socket } else { nil } }
    }

    var isPolling: Bool {
        state.withLock { if case .polling = $0.transport { true } else { false } }
    }

    /// The open packet: the session's id, its upgrades, and the heartbeat and size limits.
    func openPacket(upgrades: [String]) -> String {
        let upgradesJSON = "[" + upgrades.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        let interval = server.environment.heartbeatSeconds * 1000
        return #"0{"sid":"\#(sid)","upgrades":\#(upgradesJSON),"pingInterval":\#(interval),"pingTimeout":\#(interval),"maxPayload":\#(server.environment.maxMessageBytes)}"#
    }

    // MARK: Sending

    /// Sends an Engine.IO packet (its text).
    func send(_ packet: String) {
        send(packet, webSocketFrame: nil)
    }

    /// Sends a packet whose WebSocket frame was built once for many sessions.
    func send(_ packet: @autoclosure () -> String, webSocketFrame: ByteBuffer?) {
        let (parked, webSocket, overflow) = state.withLock { s -> (CheckedContinuation<PollAnswer, Never>?, EngineIOWebSocket?, Bool) in
            switch s.transport {
            case .closed:
                return (nil, nil, false)
            case .webSocket(let socket):
                return (nil, socket, false)
            case .polling:
                let text = packet()
                if s.queueBytes > 0 && s.queueBytes + text.utf8.count > server.environment.queueBytes {
                    return (nil, nil, true)
                }
                s.queue.append(text)
                s.queueBytes += text.utf8.count
                guard let parked = s.parked else { return (nil, nil, false) }
                s.parked = nil
                return (parked, nil, false)
            }
        }
        if let webSocket {
            if let webSocketFrame { webSocket.send(frame: webSocketFrame) } else { webSocket.send(text: packet()) }
            return
        }
        if overflow {
            server.environment.node.metrics.slowConsumerCloses.increment()
            close(.slowConsumer(queueBytes: server.environment.queueBytes))
            return
        }
        if let parked { parked.resume(returning: takePayload()) }
    }

    /// The queued packets for one response (at most 16), removed from the queue.
    private func takePayload() -> PollAnswer {
        let (payload, last) = state.withLock { s in
            let packets = s.queue.prefix(Self.maxPacketsPerPoll)
            s.queue.removeFirst(packets.count)
            s.queueBytes -= packets.reduce(0) { $0 + $1.utf8.count }
            return (EngineIOPacket.payload(packets), s.endAfterNextPoll && s.queue.isEmpty)
        }
        if last { end(reason: "closed by the server") }
        return .payload(payload)
    }

    /// Waits until the transport has room (catch-up pacing): half the queue limit free.
    func waitForRoom() async {
        while true {
            enum Room { case yes, no, socket(EngineIOWebSocket) }
            let room = state.withLock { s -> Room in
                switch s.transport {
                case .polling: s.queueBytes <= server.environment.queueBytes / 2 ? .yes : .no
                case .webSocket(let socket): .socket(socket)
                case .closed: .yes
                }
            }
            switch room {
            case .yes: return
            case .socket(let socket):
                await socket.waitForRoom()
                return
            case .no:
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
    }

    // MARK: Polling

    /// A GET: what is queued, or what comes next.
    func poll() async -> PollAnswer {
        await withCheckedContinuation { (continuation: CheckedContinuation<PollAnswer, Never>) in
            enum Next { case now(PollAnswer), parked, duplicate(CheckedContinuation<PollAnswer, Never>) }
            let next = state.withLock { s -> Next in
                switch s.transport {
                case .closed: return .now(.error(.sessionUnknown))
                case .webSocket: return .now(.error(.badRequest))
                case .polling: break
                }
                if let earlier = s.parked {
                    s.parked = nil
                    return .duplicate(earlier)
                }
                if !s.queue.isEmpty { return .now(.payload("")) }
                // While a WebSocket probes, a GET is not held: the client waits for it to
                // come back before it finishes the upgrade.
                if s.probe != nil { return .now(.payload(EngineIOPacket.noop.text)) }
                s.parked = continuation
                return .parked
            }
            switch next {
            case .now(.payload(let noop)) where !noop.isEmpty: continuation.resume(returning: .payload(noop))
            case .now(.payload): continuation.resume(returning: takePayload())
            case .now(let answer): continuation.resume(returning: answer)
            case .parked: break
            case .duplicate(let earlier):
                // Two GETs at once: the first gets a close packet, the second an error, and
                // the session ends (as Engine.IO servers do).
                earlier.resume(returning: .payload(EngineIOPacket.close.text))
                continuation.resume(returning: .error(.badRequest))
                end(reason: "two polls at once")
            }
        }
    }

    /// A POST begins (before its body is read): nil, or why it is refused. Two at once end
    /// the session.
    func beginPost() -> EngineIOError? {
        let refusal = state.withLock { s -> EngineIOError? in
            switch s.transport {
            case .closed: return .sessionUnknown
            case .webSocket: return .badRequest
            case .polling: break
            }
            if s.posting { return .badRequest }
            s.posting = true
            return nil
        }
        if refusal == .badRequest && isPolling { end(reason: "two posts at once") }
        return refusal
    }

    /// A POST's body (after `beginPost`): its packets, handled in order. Nil when accepted.
    func post(_ body: String) -> EngineIOError? {
        defer { endPost() }
        guard isPolling else { return .badRequest }
        let packets: [EngineIOPacket]
        do {
            packets = try EngineIOPacket.parsePayload(body)
        } catch {
            end(reason: "parse error: \(error)")
            return .badRequest
        }
        for packet in packets {
            switch state.withLock({ $0.commands.admit() }) {
            case .run: received(packet)
            case .refuse: rateLimited(packet, closing: false)
            case .close:
                rateLimited(packet, closing: true)
                return nil
            }
        }
        return nil
    }

    /// A POST is over (answered, or its body could not be read).
    func endPost() {
        state.withLock { $0.posting = false }
    }

    /// A packet from the client, over either transport.
    private func received(_ packet: EngineIOPacket) {
        state.withLock { $0.awaitingPong = false }
        switch packet {
        case .message(let text): client.received(text)
        case .binary(let bytes): client.received(binary: bytes)
        case .pong: break
        case .close: end(reason: "closed by the client", parked: .payload(EngineIOPacket.noop.text))
        case .ping:
            // Engine.IO v4: only the server pings.
            end(reason: "invalid heartbeat direction", close: .protocolError("invalid heartbeat direction"))
        case .open, .upgrade, .noop:
            end(reason: "unexpected packet", close: .protocolError("unexpected packet"))
        }
    }

    /// The heartbeat of a polling session: ping, or end it if the last ping went unanswered.
    func heartbeatDue() {
        let timedOut = state.withLock { s -> Bool in
            guard case .polling = s.transport else { return false }
            if s.awaitingPong { return true }
            s.awaitingPong = true
            return false
        }
        if timedOut {
            close(.goingAway("ping timeout"))
        } else if isPolling {
            send(EngineIOPacket.ping("").text)
        }
    }

    // MARK: WebSocket

    /// A message on a WebSocket of this session: the transport's, or a probe's.
    func webSocket(_ socket: EngineIOWebSocket, received message: InboundMessage) {
        let isProbe = state.withLock { $0.probe === socket }
        let packet: EngineIOPacket
        switch message {
        case .text(let text):
            do {
                packet = try EngineIOPacket.parse(Substring(text))
            } catch {
                if isProbe { socket.close(.protocolError("bad probe")) } else { end(reason: "parse error", close: .protocolError("parse error")) }
                return
            }
        case .binary(let data):
            packet = .binary(Array(data.readableBytesView))
        }
        guard isProbe else {
            received(packet)
            return
        }
        switch packet {
        case .ping("probe"):
            socket.send(text: EngineIOPacket.pong("probe").text)
            // Release the parked GET, so that the client can finish the upgrade.
            let parked = state.withLock { s in
                defer { s.parked = nil }
                return s.parked
            }
            parked?.resume(returning: .payload(EngineIOPacket.noop.text))
        case .upgrade:
            upgraded(to: socket)
        default:
            socket.close(.protocolError("unexpected packet while probing"))
            state.withLock { if $0.probe === socket { $0.probe = nil } }
        }
    }

    /// A WebSocket wants to take over: it probes; nil if the session cannot upgrade.
    func startProbe(_ socket: EngineIOWebSocket) -> Bool {
        state.withLock { s in
            guard case .polling = s.transport, s.probe == nil else { return false }
            s.probe = socket
            return true
        }
    }

    /// The client's `5`: everything goes over the WebSocket from now on, starting with what waited.
    private func upgraded(to socket: EngineIOWebSocket) {
        let (waiting, parked) = state.withLock { s -> ([String], CheckedContinuation<PollAnswer, Never>?) in
            s.probe = nil
            s.transport = .webSocket(socket)
            defer {
                s.queue = []
                s.queueBytes = 0
                s.parked = nil
            }
            return (s.queue, s.parked)
        }
        parked?.resume(returning: .payload(EngineIOPacket.noop.text))
        for packet in waiting { socket.send(text: packet) }
    }

    /// A WebSocket of this session closed: a probe is forgotten, the transport ends the session.
    func webSocketClosed(_ socket: EngineIOWebSocket) {
        let wasTransport = state.withLock { s -> Bool in
            if s.probe === socket { s.probe = nil }
            if case .webSocket(let current) = s.transport, current === socket { return true }
            return false
        }
        if wasTransport { end(reason: "transport closed") }
    }

    /// A packet over the command rate (either transport): a Socket.IO packet is refused (an
    /// event that asked for an acknowledgement gets a `rate_limited` one), anything else
    /// (heartbeats, attachments, closes) is taken as usual; `closing` ends the session with 4129.
    private func rateLimited(_ packet: EngineIOPacket, closing: Bool) {
        server.environment.node.metrics.rateLimitedCommands.increment()
        if closing {
            close(.rateLimited)
        } else if case .message(let text) = packet {
            client.rateLimited(text)
        } else {
            received(packet)
        }
    }

    /// A message of one of this session's WebSockets over the command rate: as over polling,
    /// except that a probe's packets and invalid ones go the usual way.
    func webSocket(_ socket: EngineIOWebSocket, rateLimited message: InboundMessage, closing: Bool) {
        let isProbe = state.withLock { $0.probe === socket }
        guard !isProbe, case .text(let text) = message, let packet = try? EngineIOPacket.parse(Substring(text)) else {
            webSocket(socket, received: message)
            return
        }
        rateLimited(packet, closing: closing)
    }

    // MARK: Ending

    /// Ends the connection for `reason`, after what is queued. A client that must not
    /// reconnect (bad credentials, bad requests) gets a Socket.IO DISCONNECT and an
    /// Engine.IO close; one that should reconnect and resume finds its transport gone.
    func close(_ reason: CloseReason) {
        if reason.reconnect == .no {
            client.sendDisconnect()
            send(EngineIOPacket.close.text)
        }
        enum Action { case none, closeSocket(EngineIOWebSocket), answer(CheckedContinuation<PollAnswer, Never>), waitForPoll, fail }
        let action = state.withLock { s -> Action in
            switch s.transport {
            case .closed: return .none
            case .webSocket(let socket): return .closeSocket(socket)
            case .polling:
                guard reason.reconnect == .no else { return .fail }
                // The close packet goes with the parked GET, or the next one.
                if let parked = s.parked {
                    s.parked = nil
                    s.endAfterNextPoll = true
                    return .answer(parked)
                }
                s.endAfterNextPoll = true
                return .waitForPoll
            }
        }
        server.log(closing: self, reason: reason)
        switch action {
        case .none, .waitForPoll: break
        case .closeSocket(let socket): socket.close(reason)
        case .answer(let parked): parked.resume(returning: takePayload())
        case .fail: end(reason: reason.description)
        }
    }

    /// The session is over: nothing more goes out, later requests get "Session ID unknown",
    /// and a parked GET gets `parked`.
    func end(reason: String, parked answer: PollAnswer = .error(.sessionUnknown), close: CloseReason = .normal) {
        let (wasOpen, parked, probe, socket) = state.withLock { s -> (Bool, CheckedContinuation<PollAnswer, Never>?, EngineIOWebSocket?, EngineIOWebSocket?) in
            var socket: EngineIOWebSocket?
            switch s.transport {
            case .closed: return (false, nil, nil, nil)
            case .webSocket(let current): socket = current
            case .polling: break
            }
            s.transport = .closed
            defer {
                s.parked = nil
                s.probe = nil
                s.queue = []
                s.queueBytes = 0
            }
            return (true, s.parked, s.probe, socket)
        }
        guard wasOpen else { return }
        parked?.resume(returning: answer)
        probe?.close(.normal)
        // A WebSocket transport ends with its session (when it is not already what ended).
        socket?.close(close)
        client.ended()
        server.remove(self, reason: reason)
    }

    func closeForRestart() {
        close(.restart)
    }

    func hangUp() {
        let socket = state.withLock { s -> EngineIOWebSocket? in
            if case .webSocket(let socket) = s.transport { return socket }
            return nil
        }
        socket?.hangUp()
        end(reason: "server stopped")
    }
}
