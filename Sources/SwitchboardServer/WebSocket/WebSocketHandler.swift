import NIOCore
import NIOWebSocket
import SwitchboardCore

/// A message read from a WebSocket: the frames of one message, joined.
enum InboundMessage: Sendable {
    case text(String)
    case binary(ByteBuffer)
}

/// What a WebSocket's messages go to: `/v1/ws` commands, or Engine.IO packets. Called on
/// the connection's event loop.
protocol WebSocketReceiver: AnyObject {
    func received(_ message: InboundMessage)
    /// A message over the command rate; `closing` once another burst was refused in a row.
    func rateLimited(_ message: InboundMessage, closing: Bool)
    /// The server is closing the connection with `code`.
    func closing(_ reason: CloseReason)
    /// The connection is gone.
    func connectionClosed()
    /// The heartbeat's ping: a WebSocket ping frame, or a protocol's own (Engine.IO's `2`).
    var heartbeatPing: ByteBuffer { get }
}

extension WebSocketReceiver {
    var heartbeatPing: ByteBuffer { WebSocketHandler.ping }
}

/// The event-loop side of one WebSocket connection, after the upgrade.
///
/// Inbound, it answers pings, notes pongs, answers a close, joins fragments, enforces the
/// size limit and UTF-8 (RFC 6455) and the command rate limit, and hands whole messages to
/// the session. Outbound, it writes whole frames (built elsewhere, header included) as its
/// loop's outbox hands them over, and closes a connection that falls more than the queue
/// limit behind (4100). Its loop's heartbeat pings it and closes it when a pong is missed (1001).
/// No task and no stream per connection: all of this is state on the event loop.
final class WebSocketHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame

    private let settings: SessionEnvironment
    private let raw: RawFrameWriter
    private var session: (any WebSocketReceiver)?
    private var context: ChannelHandlerContext?
    /// A close frame was written: nothing else goes out.
    private var closeSent = false
    /// Frames of this batch, not yet written: one buffer, so that a batch is one write
    /// through the pipeline (a lone frame is kept as it is, shared, not copied).
    private var batch: ByteBuffer?
    private var batchIsShared = false
    /// Something was written since the last flush.
    private var unflushed = false
    /// Bytes the channel holds unwritten, as of the first write of this batch plus the batch.
    private var bufferedBytes = 0
    private var partial: (opcode: WebSocketOpcode, data: ByteBuffer)?
    private var awaitingPong = false
    private let heartbeat: LoopHeartbeat
    private var expiry: Scheduled<Void>?
    private var commands: TokenBucket
    private var refusedInARow = 0

    init(settings: SessionEnvironment, raw: RawFrameWriter, heartbeat: LoopHeartbeat) {
        self.settings = settings
        self.raw = raw
        self.heartbeat = heartbeat
        self.commands = TokenBucket(rate: settings.commandsPerSecond, burst: settings.commandBurst)
    }

    /// Set once, before the handler is added.
    func attach(_ session: any WebSocketReceiver) {
        self.session = session
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        heartbeat.join(self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        heartbeat.leave(self)
        expiry?.cancel()
        expiry = nil
        session?.connectionClosed()
        session = nil
        context.fireChannelInactive()
    }

    // MARK: Outbound (on the loop, from the outbox)

    /// Writes an outbox item without flushing; true if this is the batch's first write.
    func write(_ item: LoopOutbox.Item) -> Bool {
        guard let context, !closeSent else { return false }
        let first = !unflushed
        switch item {
        case .frame(let frame):
            if first { bufferedBytes = Self.buffered(context.channel) }
            if bufferedBytes > 0 && bufferedBytes + frame.readableBytes > settings.queueBytes {
                close(.slowConsumer(queueBytes: settings.queueBytes))
                return false
            }
            bufferedBytes += frame.readableBytes
            append(frame)
        case .close(let reason):
            close(reason)
            return false
        }
        unflushed = true
        return first
    }

    private func append(_ frame: ByteBuffer) {
        guard var joined = batch else {
            batch = frame
            batchIsShared = true
            return
        }
        batch = nil
        if batchIsShared || joined.capacity - joined.writerIndex < frame.readableBytes {
            var grown = ByteBuffer()
            grown.reserveCapacity(4 * (joined.readableBytes + frame.readableBytes))
            grown.writeImmutableBuffer(joined)
            joined = grown
        }
        joined.writeImmutableBuffer(frame)
        batch = joined
        batchIsShared = false
    }

    /// Hands the batch to the pipeline, unflushed.
    private func writeBatch() {
        guard let frames = batch else { return }
        batch = nil
        raw.context?.write(NIOAny(frames), promise: nil)
    }

    func flushBatch() {
        guard unflushed else { return }
        unflushed = false
        writeBatch()
        raw.context?.flush()
    }

    /// Whether the connection has room for a batch of catch-up (at most half the limit waiting).
    var hasRoom: Bool {
        guard let context, !closeSent, context.channel.isActive else { return true }
        return Self.buffered(context.channel) <= settings.queueBytes / 2
    }

    /// Sends a close frame after what is written, once. With `hangUp` the connection drops
    /// once the frame is out; otherwise when the peer answers, or after the close timeout.
    /// `echo` marks the answer to the peer's close, which is not logged as the server's.
    func close(_ reason: CloseReason, hangUp: Bool = false, echo: Bool = false) {
        guard let context else { return }
        guard !closeSent else {
            if hangUp { context.close(promise: nil) }
            return
        }
        closeSent = true
        unflushed = false
        writeBatch()
        if !echo { session?.closing(reason) }
        let channel = context.channel
        let written = send(WebSocketWire.closeFrame(code: reason.code, reason: reason.reason))
        if hangUp {
            written?.whenComplete { _ in channel.close(promise: nil) }
        } else {
            // The wait for the peer's answer starts once the frame is out: a slow reader gets
            // what was queued before it. One that stops reading is dropped by the heartbeat.
            let timeout = settings.closeTimeout
            written?.whenSuccess { channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) } }
        }
    }

    /// Closes with 4101 at `millis` (Unix time) unless rescheduled by a refresh.
    func expire(atMillis millis: Int64?) {
        expiry?.cancel()
        expiry = nil
        guard let millis, let context else { return }
        let this = NIOLoopBound(self, eventLoop: context.eventLoop)
        expiry = context.eventLoop.scheduleTask(in: .milliseconds(max(0, millis - Timestamp.nowMilliseconds()))) {
            this.value.close(.tokenExpired)
        }
    }

    /// Pings, or closes a peer that did not answer the last ping (1001). While closing no
    /// pings go out, so a connection still closing after two heartbeats is dropped.
    func heartbeatDue() {
        if awaitingPong {
            close(.goingAway("ping timeout"), hangUp: true)
            return
        }
        awaitingPong = true
        if !closeSent, let ping = session?.heartbeatPing { send(ping) }
    }

    static let ping = WebSocketWire.frame(opcode: WebSocketWire.ping, payload: ByteBuffer(string: "sb"))

    /// Writes and flushes a control frame at once.
    @discardableResult
    private func send(_ frame: ByteBuffer) -> EventLoopFuture<Void>? {
        guard let raw = raw.context else { return nil }
        return raw.writeAndFlush(NIOAny(frame))
    }

    private static func buffered(_ channel: any Channel) -> Int {
        (try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // Any frame is a sign of life, not only a pong.
        awaitingPong = false
        do {
            if let message = try read(frame, context: context) { received(message) }
        } catch let error as ProtocolViolation {
            close(error.reason, hangUp: true)
        } catch {
            context.close(promise: nil)
        }
    }

    /// A protocol error found while reading: the connection closes with its code (RFC 6455).
    struct ProtocolViolation: Error {
        let reason: CloseReason
    }

    /// Handles one frame; a whole message when it completes one.
    private func read(_ frame: WebSocketFrame, context: ChannelHandlerContext) throws -> InboundMessage? {
        guard frame.reservedBits.isEmpty else { throw ProtocolViolation(reason: .protocolError("reserved bits set")) }
        switch frame.opcode {
        case .ping:
            guard frame.fin, frame.length <= 125 else { throw ProtocolViolation(reason: .protocolError("bad ping")) }
            if !closeSent {
                send(WebSocketWire.frame(opcode: WebSocketWire.pong, payload: frame.unmaskedData))
            }
        case .pong:
            break
        case .connectionClose:
            // Echo the peer's code (RFC 6455 section 5.5.1) unless we closed first, then hang up.
            var data = frame.unmaskedData
            let code = data.readInteger(as: UInt16.self) ?? 1000
            let echoed = code == 1005 || code == 1006 ? 1000 : code
            close(CloseReason(code: echoed, reason: "", reconnect: CloseReason.reconnect(forCode: echoed)), hangUp: true, echo: true)
        case .text, .binary:
            guard partial == nil else { throw ProtocolViolation(reason: .protocolError("a new message inside a fragmented one")) }
            if frame.fin { return try Self.message(frame.opcode, frame.unmaskedData) }
            partial = (frame.opcode, frame.unmaskedData)
        case .continuation:
            guard let (opcode, started) = partial else { throw ProtocolViolation(reason: .protocolError("continuation without a message")) }
            var data = started
            var more = frame.unmaskedData
            guard data.readableBytes + more.readableBytes <= settings.maxMessageBytes else {
                throw ProtocolViolation(reason: .tooBig("message over \(settings.maxMessageBytes) bytes"))
            }
            data.writeBuffer(&more)
            partial = nil
            if frame.fin { return try Self.message(opcode, data) }
            partial = (opcode, data)
        default:
            throw ProtocolViolation(reason: .protocolError("unknown opcode"))
        }
        return nil
    }

    private static func message(_ opcode: WebSocketOpcode, _ data: ByteBuffer) throws -> InboundMessage {
        guard opcode == .text else { return .binary(data) }
        guard let text = String(validating: data.readableBytesView, as: UTF8.self) else {
            throw ProtocolViolation(reason: .invalidData("text frame is not UTF-8"))
        }
        return .text(text)
    }

    /// Passes a message to the session, or refuses it over the command rate: a `rate_limited`
    /// answer, and 4129 once another burst has been refused in a row.
    private func received(_ message: InboundMessage) {
        guard !closeSent, let session else { return }
        guard commands.take() else {
            refusedInARow += 1
            session.rateLimited(message, closing: refusedInARow > settings.commandBurst)
            return
        }
        refusedInARow = 0
        session.received(message)
    }

    /// Decoder errors: a frame over the limit (1009) or a malformed one (1002).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? NIOWebSocketError else {
            context.close(promise: nil)
            return
        }
        switch error {
        case .invalidFrameLength:
            close(.tooBig("frame over \(settings.maxMessageBytes) bytes"), hangUp: true)
        default:
            close(.protocolError("malformed frame"), hangUp: true)
        }
    }
}
