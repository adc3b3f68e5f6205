import Foundation
import NIOCore
import NIOWebSocket

/// A subscribed connection, usable from any thread: its handler is reached on its own loop.
struct Subscriber: Sendable {
    let handler: NIOLoopBound<SubscriberHandler>

    /// Sends a `ping` command; succeeds when its reply arrives within `timeout`.
    func ping(timeout: TimeAmount) -> EventLoopFuture<Void> {
        let handler = self.handler
        return handler.eventLoop.flatSubmit { handler.value.ping(timeout: timeout) }
    }

    /// Sends a close frame (1000) and closes; completes when the channel is closed.
    func close() -> EventLoopFuture<Void> {
        let handler = self.handler
        return handler.eventLoop.flatSubmit { handler.value.close() }
    }
}

/// One connection after the WebSocket upgrade: subscribes once the welcome arrives, answers the
/// server's pings (unanswered, the server closes with 1001), and feeds every message push into
/// its loop's stats.
final class SubscriberHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private enum State { case awaitingWelcome, subscribing, subscribed, closing }

    private let channelName: String
    private let stats: LoopStats
    private let ready: EventLoopPromise<Subscriber>
    private var state = State.awaitingWelcome
    private var context: ChannelHandlerContext?
    /// The last offset seen: the subscribe reply's, then each message's.
    private var lastOffset: Int64 = 0
    private var pendingPing: (id: Int, promise: EventLoopPromise<Void>, timer: Scheduled<Void>)?
    private var nextCommandID = 2
    private var closeCode: UInt16?

    init(channelName: String, stats: LoopStats, ready: EventLoopPromise<Subscriber>) {
        self.channelName = channelName
        self.stats = stats
        self.ready = ready
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            // Server frames are never masked, so `data` is the payload as sent.
            let push = frame.data.withUnsafeReadableBytes(FrameScanner.scan)
            if case .message(let offset, let sentAt) = push, state == .subscribed {
                message(offset: offset, sentAt: sentAt)
            } else {
                control(frame.data, context: context)
            }
        case .ping:
            send(.pong, frame.unmaskedData, context: context)
        case .connectionClose:
            var data = frame.unmaskedData
            closeCode = data.readInteger(as: UInt16.self)
            endSubscription()
            state = .closing
            let closeFrame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(closeFrame)).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let error = BenchError.closed(code: closeCode)
        endSubscription()
        state = .closing
        ready.fail(error)
        failPendingPing(error)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        ready.fail(error)
        failPendingPing(error)
        context.close(promise: nil)
    }

    /// Sends a `ping` command (not a WebSocket ping: the reply proves the session is alive).
    func ping(timeout: TimeAmount) -> EventLoopFuture<Void> {
        guard let context, state == .subscribed, pendingPing == nil else {
            return ready.futureResult.eventLoop.makeFailedFuture(BenchError.closed(code: closeCode))
        }
        let id = nextCommandID
        nextCommandID += 1
        let promise = context.eventLoop.makePromise(of: Void.self)
        let timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            self.failPendingPing(BenchError.timeout("waiting for the ping reply"))
        }
        pendingPing = (id, promise, timer)
        sendText(#"{"id":\#(id),"op":"ping"}"#, context: context)
        return promise.futureResult
    }

    /// Closes as the client (1000): not counted as a disconnect.
    func close() -> EventLoopFuture<Void> {
        guard let context else { return ready.futureResult.eventLoop.makeSucceededVoidFuture() }
        if state == .subscribed { stats.counters.open -= 1 }
        let closed = context.channel.closeFuture
        guard state != .closing else {
            context.close(promise: nil)
            return closed
        }
        state = .closing
        var code = context.channel.allocator.buffer(capacity: 2)
        code.writeInteger(UInt16(1000))
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: code)
        context.writeAndFlush(wrapOutboundOut(frame)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
        return closed
    }

    @inline(__always)
    private func message(offset: Int64, sentAt: Int64?) {
        guard offset > lastOffset else {
            stats.counters.reorders += 1
            return
        }
        stats.counters.gaps += Int(offset - lastOffset - 1)
        lastOffset = offset
        stats.delivered(sentAt: sentAt, now: wallClockNanos())
    }

    /// The welcome and replies: rare, so decoded in full.
    private func control(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        guard let frame = try? JSONDecoder().decode(ServerFrame.self, from: Data(buffer.readableBytesView)) else {
            stats.counters.unexpectedFrames += 1
            return
        }
        switch (frame.type, frame.id) {
        case ("welcome", _) where state == .awaitingWelcome:
            state = .subscribing
            sendText(#"{"id":1,"op":"subscribe","channel":"\#(channelName)"}"#, context: context)
        case ("reply", 1) where state == .subscribing:
            if let error = frame.error {
                ready.fail(BenchError.commandRefused(code: error.code, message: error.message))
                context.close(promise: nil)
                return
            }
            lastOffset = frame.result?.offset ?? 0
            state = .subscribed
            stats.counters.open += 1
            ready.succeed(Subscriber(handler: NIOLoopBound(self, eventLoop: context.eventLoop)))
        case ("reply", let id?) where id == pendingPing?.id:
            let pending = pendingPing!
            pendingPing = nil
            pending.timer.cancel()
            if let error = frame.error {
                pending.promise.fail(BenchError.commandRefused(code: error.code, message: error.message))
            } else {
                pending.promise.succeed()
            }
        default:
            stats.counters.unexpectedFrames += 1
        }
    }

    /// A subscription the server ended (close frame or dropped TCP): a disconnect.
    private func endSubscription() {
        guard state == .subscribed else { return }
        stats.counters.open -= 1
        stats.counters.disconnects[closeCode.map(String.init) ?? "none", default: 0] += 1
    }

    private func failPendingPing(_ error: any Error) {
        guard let pending = pendingPing else { return }
        pendingPing = nil
        pending.timer.cancel()
        pending.promise.fail(error)
    }

    private func sendText(_ text: String, context: ChannelHandlerContext) {
        send(.text, context.channel.allocator.buffer(string: text), context: context)
    }

    /// Client frames must be masked (RFC 6455 §5.1).
    private func send(_ opcode: WebSocketOpcode, _ data: ByteBuffer, context: ChannelHandlerContext) {
        let frame = WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(), data: data)
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }
}

/// The fields of the welcome and of replies that the bench reads.
private struct ServerFrame: Decodable {
    struct Result: Decodable {
        let offset: Int64?
    }

    struct Failure: Decodable {
        let code: String
        let message: String
    }

    let type: String
    let id: Int?
    let result: Result?
    let error: Failure?
}
