import NIOCore
import SwitchboardCore

/// The only handler of a new connection: it reads the head of the first request and
/// decides what the connection is.
///
/// - A WebSocket handshake is answered here: checked, admitted (without a task unless a
///   token needs verifying), answered 101 or refused, and the accepted connection gets its
///   `WebSocketHandler` and any bytes that came after the head. No HTTP parser, upgrade
///   handler or request task is ever made for it, which is most of what a handshake cost.
/// - Anything else gets the HTTP pipeline (`installHTTP`), which is handed the bytes read
///   so far and parses them again.
/// - A head that does not end within `timeout` (a slowloris handshake) closes the connection.
final class FirstRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// As NIO's HTTP parser allows.
    static let headLimit = 80 * 1024

    private enum State {
        case reading
        /// A token is being verified; bytes that arrive meanwhile wait in `buffered`.
        case deciding
        case done
    }

    private var state = State.reading
    private var buffered: ByteBuffer?
    private var deadline: Scheduled<Void>?
    private let timeout: TimeAmount
    private let compression: Bool
    private let admit: @Sendable (HandshakeRequest, SocketAddress?) -> AdmissionCheck
    private let accept: @Sendable (any Channel, Admission) throws -> Void
    private let installHTTP: (any Channel) throws -> UpgradeChannel.Negotiated
    private let negotiated: EventLoopPromise<UpgradeChannel.Negotiated>

    init(
        timeout: TimeAmount,
        compression: Bool,
        admit: @escaping @Sendable (HandshakeRequest, SocketAddress?) -> AdmissionCheck,
        accept: @escaping @Sendable (any Channel, Admission) throws -> Void,
        installHTTP: @escaping (any Channel) throws -> UpgradeChannel.Negotiated,
        negotiated: EventLoopPromise<UpgradeChannel.Negotiated>
    ) {
        self.timeout = timeout
        self.compression = compression
        self.admit = admit
        self.accept = accept
        self.installHTTP = installHTTP
        self.negotiated = negotiated
    }

    // MARK: Life cycle

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        if state != .done {
            state = .done
            negotiated.fail(ChannelError.ioOnClosedChannel)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        if state != .done {
            state = .done
            negotiated.fail(ChannelError.ioOnClosedChannel)
        }
        context.fireChannelInactive()
    }

    /// The server is shutting down: a connection that has not finished its first request
    /// holds nothing worth waiting for.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, state != .done {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            bound.value.close(promise: nil)
        }
    }

    // MARK: Reading the head

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if buffered == nil {
            buffered = bytes
        } else {
            buffered!.writeBuffer(&bytes)
        }
        switch state {
        case .done:
            return
        case .deciding:
            if buffered!.readableBytes > Self.headLimit { context.close(promise: nil) }
            return
        case .reading:
            break
        }
        switch buffered!.withUnsafeReadableBytes({ RequestHead.parse($0, limit: Self.headLimit) }) {
        case .incomplete:
            return
        case .tooLarge:
            refuse(.problem(ProtocolError(.tooLarge, "the request head is larger than \(Self.headLimit / 1024) KiB"), path: "/"), context: context)
        case .malformed(let reason):
            refuse(.problem(.badRequest(reason), path: "/"), context: context)
        case .head(let head, let length):
            deadline?.cancel()
            if head.asksForWebSocket {
                handshake(head, length: length, context: context)
            } else {
                passToHTTP(context: context)
            }
        }
    }

    // MARK: Deciding

    private func handshake(_ head: RequestHead, length: Int, context: ChannelHandlerContext) {
        let request = WebSocketHandshake.request(head)
        let key: String
        switch WebSocketHandshake.key(head) {
        case .success(let value): key = value
        case .failure(let error): return refuse(.problem(error, path: request.path), context: context)
        }
        let extensions = compression ? PerMessageDeflateOffer.negotiate(head.values("sec-websocket-extensions")) : nil
        switch admit(request, context.channel.remoteAddress) {
        case .decided(let verdict):
            decide(verdict, key: key, extensions: extensions, headLength: length, context: context)
        case .pending(let later):
            state = .deciding
            let promise = context.eventLoop.makePromise(of: Result<Admission, HandshakeRefusal>.self)
            promise.completeWithTask { await later() }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            promise.futureResult.hop(to: context.eventLoop).whenSuccess { verdict in
                let (handler, context) = bound.value
                guard handler.state == .deciding else { return }
                handler.decide(verdict, key: key, extensions: extensions, headLength: length, context: context)
            }
        }
    }

    private func decide(_ verdict: Result<Admission, HandshakeRefusal>, key: String, extensions: String?, headLength: Int, context: ChannelHandlerContext) {
        guard case .success(var admission) = verdict else {
            if case .failure(let refusal) = verdict { refuse(refusal, context: context) }
            return
        }
        admission.deflate = extensions != nil
        state = .done
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: WebSocketHandshake.switchingProtocols(key: key, extensions: extensions))), promise: nil)
        do {
            try accept(context.channel, admission)
        } catch {
            negotiated.fail(error)
            context.close(promise: nil)
            return
        }
        negotiated.succeed(.handled)
        buffered!.moveReaderIndex(forwardBy: headLength)
        handOver(context: context)
    }

    private func passToHTTP(context: ChannelHandlerContext) {
        state = .done
        do {
            negotiated.succeed(try installHTTP(context.channel))
        } catch {
            negotiated.fail(error)
            context.close(promise: nil)
            return
        }
        handOver(context: context)
    }

    /// Passes what was read to the handlers after this one, and leaves the pipeline.
    private func handOver(context: ChannelHandlerContext) {
        if let rest = buffered.take(), rest.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(rest))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Answers in the form the request's protocol reads and closes the connection.
    private func refuse(_ refusal: HandshakeRefusal, context: ChannelHandlerContext) {
        state = .done
        deadline?.cancel()
        buffered = nil
        negotiated.succeed(.handled)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: WebSocketHandshake.refusal(refusal)))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
