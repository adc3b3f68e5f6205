import NIOCore
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

/// One WebSocket connection after the upgrade, on its event loop: the only handler in its
/// pipeline (after TLS), reading and writing frames itself (RFC 6455).
///
/// Inbound, it parses frames (`WebSocketFrameHeader`), unmasks them, joins fragments,
/// inflates compressed messages (permessage-deflate), enforces the size limit (1009), the
/// protocol's rules (1002) and UTF-8 (1007), answers pings and closes, and applies the
/// command rate limit before handing whole messages to its receiver. Outbound, it writes
/// whole frames built elsewhere (a message's frame is built once and shared by every
/// subscriber) as its loop's outbox hands them over, and closes a connection whose unwritten
/// bytes pass the queue limit (4100). Backpressure comes from the channel's writability
/// (its write-buffer water marks), never from polling. Its loop's heartbeat pings it and
/// drops it when a ping goes unanswered (1001). No task and no stream per connection.
final class WebSocketHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A reference to a handler that crosses threads but is only used on the handler's
    /// event loop (by its loop's outbox and heartbeat): 8 bytes, unlike `NIOLoopBound`.
    struct Ref: @unchecked Sendable {
        let handler: WebSocketHandler
    }

    private let settings: SessionEnvironment
    private let heartbeat: LoopHeartbeat
    /// permessage-deflate was negotiated: compressed messages may come and go.
    let deflate: Bool
    private var session: (any WebSocketReceiver)?
    private var context: ChannelHandlerContext?
    /// A close frame was written: nothing else goes out.
    private var closeSent = false
    /// Something was written since the last flush.
    private var unflushed = false
    /// The start of a frame whose rest has not arrived yet.
    private var carry: ByteBuffer?
    /// A fragmented message so far, unmasked.
    private var partial: Partial?
    private var awaitingPong = false
    private var expiry: Scheduled<Void>?
    private var commands: CommandRate
    /// Waiting for the channel to be writable again (catch-up pacing).
    private var writableWaiters: [() -> Void] = []

    private struct Partial {
        var text: Bool
        var compressed: Bool
        var data: ByteBuffer
    }

    init(settings: SessionEnvironment, heartbeat: LoopHeartbeat, deflate: Bool) {
        self.settings = settings
        self.heartbeat = heartbeat
        self.deflate = deflate
        self.commands = CommandRate(perSecond: settings.commandsPerSecond, burst: settings.commandBurst)
    }

    var ref: Ref { Ref(handler: self) }

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
        runWritableWaiters()
        session?.connectionClosed()
        session = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Outbound (on the loop, from the outbox)

    /// Writes a whole frame without flushing; true if it is the first write since the last
    /// flush (the outbox flushes each connection it wrote to once per drain). A connection
    /// over its write-buffer high-water mark is checked against the queue limit (4100).
    func write(_ frame: ByteBuffer) -> Bool {
        guard let context, !closeSent else { return false }
        if !context.channel.isWritable {
            let buffered = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
            if buffered + frame.readableBytes > settings.queueBytes {
                close(.slowConsumer(queueBytes: settings.queueBytes))
                return false
            }
        }
        context.write(wrapOutboundOut(frame), promise: nil)
        defer { unflushed = true }
        return !unflushed
    }

    func flush() {
        guard unflushed, let context else { return }
        unflushed = false
        context.flush()
    }

    /// Calls `callback` once the connection can take more: at once if it is writable (or
    /// gone), else when the kernel has taken enough that it falls below the low-water mark.
    func whenWritable(_ callback: @escaping () -> Void) {
        guard let context, !closeSent, context.channel.isActive, !context.channel.isWritable else {
            callback()
            return
        }
        writableWaiters.append(callback)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { runWritableWaiters() }
        context.fireChannelWritabilityChanged()
    }

    private func runWritableWaiters() {
        guard !writableWaiters.isEmpty else { return }
        let waiters = writableWaiters
        writableWaiters = []
        for waiter in waiters { waiter() }
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
        if !echo { session?.closing(reason) }
        runWritableWaiters()
        let channel = context.channel
        let written = context.writeAndFlush(wrapOutboundOut(WebSocketWire.closeFrame(code: reason.code, reason: reason.reason)))
        if hangUp {
            written.whenComplete { _ in channel.close(promise: nil) }
        } else {
            // The wait for the peer's answer starts once the frame is out: a slow reader gets
            // what was queued before it. One that stops reading is dropped by the heartbeat.
            let timeout = settings.closeTimeout
            written.whenSuccess { channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) } }
        }
    }

    /// Closes with 4101 at `millis` (Unix time) unless rescheduled by a refresh.
    func expire(atMillis millis: Int64?) {
        expiry?.cancel()
        expiry = nil
        guard let millis, let context else { return }
        let this = Ref(handler: self)
        expiry = context.eventLoop.scheduleTask(in: .milliseconds(max(0, millis - Timestamp.nowMilliseconds()))) {
            this.handler.close(.tokenExpired)
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
    private func send(_ frame: ByteBuffer) {
        guard let context else { return }
        unflushed = false
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var input = unwrapInboundIn(data)
        // Any bytes are a sign of life, not only a pong.
        awaitingPong = false
        if var held = carry {
            carry = nil
            held.writeBuffer(&input)
            input = held
        }
        do {
            while let (header, payload) = try nextFrame(&input) {
                try read(header, payload)
            }
        } catch {
            close(CloseReason(code: error.code, reason: error.description, reconnect: .no), hangUp: true)
            return
        }
        if input.readableBytes > 0 { keep(input) }
    }

    /// The next whole frame in `input` (its payload still masked), or nil when more bytes are needed.
    private func nextFrame(_ input: inout ByteBuffer) throws(WebSocketFrameHeader.Violation) -> (WebSocketFrameHeader, ByteBuffer)? {
        let maxPayload = settings.maxMessageBytes
        let deflate = self.deflate
        let parsed = try input.withUnsafeReadableBytes { bytes throws(WebSocketFrameHeader.Violation) in
            try WebSocketFrameHeader.parse(bytes, maxPayload: maxPayload, compressionNegotiated: deflate)
        }
        guard case .frame(let header) = parsed, input.readableBytes >= header.headerLength + header.payloadLength else { return nil }
        input.moveReaderIndex(forwardBy: header.headerLength)
        return (header, input.readSlice(length: header.payloadLength)!)
    }

    /// Keeps the start of a frame until the rest arrives: in a buffer of its own, sized for
    /// the whole frame once its header is known, so that the read buffer is not held.
    private func keep(_ input: ByteBuffer) {
        var needed = input.readableBytes
        if case .frame(let header)? = try? input.withUnsafeReadableBytes({ bytes throws(WebSocketFrameHeader.Violation) in
            try WebSocketFrameHeader.parse(bytes, maxPayload: settings.maxMessageBytes, compressionNegotiated: deflate)
        }) {
            needed = header.headerLength + header.payloadLength
        }
        var held = ByteBuffer()
        held.reserveCapacity(max(needed, 16))
        held.writeImmutableBuffer(input)
        carry = held
    }

    /// Handles one frame.
    private func read(_ header: WebSocketFrameHeader, _ payload: ByteBuffer) throws(WebSocketFrameHeader.Violation) {
        switch header.opcode {
        case .ping:
            if !closeSent { send(WebSocketWire.frame(opcode: WebSocketWire.pong, payload: Self.unmasked(payload, header))) }
        case .pong:
            break
        case .close:
            // Echo the peer's code (RFC 6455 section 5.5.1) unless we closed first, then hang
            // up; a malformed close payload is answered 1002 or 1007 (section 7.4).
            let data = Self.unmasked(payload, header)
            let parsed = try data.withUnsafeReadableBytes { bytes throws(WebSocketFrameHeader.Violation) in
                try WebSocketFrameHeader.closePayload(bytes)
            }
            let code = parsed?.code ?? 1000
            close(CloseReason(code: code, reason: "", reconnect: CloseReason.reconnect(forCode: code)), hangUp: true, echo: true)
        case .text, .binary:
            guard partial == nil else { throw .init(code: 1002, description: "a new message inside a fragmented one") }
            let message = Partial(text: header.opcode == .text, compressed: header.compressed, data: Self.unmasked(payload, header))
            if header.fin { try complete(message) } else { partial = message }
        case .continuation:
            guard var message = partial else { throw .init(code: 1002, description: "a continuation frame without a message") }
            partial = nil
            guard message.data.readableBytes + payload.readableBytes <= settings.maxMessageBytes else {
                throw .init(code: 1009, description: "message over \(settings.maxMessageBytes) bytes")
            }
            let start = message.data.readableBytes
            message.data.writeImmutableBuffer(payload)
            message.data.withUnsafeMutableReadableBytes { header.unmask(UnsafeMutableRawBufferPointer(rebasing: $0[start...])) }
            if header.fin { try complete(message) } else { partial = message }
        }
    }

    /// The payload unmasked, in a buffer of its own.
    private static func unmasked(_ payload: ByteBuffer, _ header: WebSocketFrameHeader) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(payload.readableBytes)
        out.writeImmutableBuffer(payload)
        out.withUnsafeMutableReadableBytes { header.unmask($0) }
        return out
    }

    /// A whole message: inflated if compressed, checked for UTF-8 if text, then passed on.
    private func complete(_ message: Partial) throws(WebSocketFrameHeader.Violation) {
        guard !closeSent else { return }
        var data = message.data
        if message.compressed {
            do {
                data = try Deflate.inflate(data, limit: settings.maxMessageBytes)
            } catch is Deflate.TooBig {
                throw .init(code: 1009, description: "message over \(settings.maxMessageBytes) bytes once inflated")
            } catch {
                throw .init(code: 1007, description: "a compressed message that does not inflate")
            }
        }
        guard message.text else {
            received(.binary(data))
            return
        }
        guard let text = String(validating: data.readableBytesView, as: UTF8.self) else {
            throw .init(code: 1007, description: "text frame is not UTF-8")
        }
        received(.text(text))
    }

    /// Passes a message to the session, or refuses it over the command rate: a `rate_limited`
    /// answer, and 4129 once another burst has been refused in a row.
    private func received(_ message: InboundMessage) {
        guard !closeSent, let session else { return }
        switch commands.admit() {
        case .run: session.received(message)
        case .refuse: session.rateLimited(message, closing: false)
        case .close: session.rateLimited(message, closing: true)
        }
    }
}
