import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// Opens subscriber connections: TCP, the HTTP upgrade to `/v1/ws` (NIO's client upgrader),
/// then a `SubscriberHandler` that subscribes to the bench channel.
struct WebSocketClient: Sendable {
    let options: BenchOptions
    let recorder: LatencyRecorder
    let group: any EventLoopGroup
    /// For the whole of connecting, upgrading and subscribing.
    let timeout = TimeAmount.seconds(15)

    /// Connects on the group's next loop; succeeds once the subscribe reply has arrived.
    func connect() -> EventLoopFuture<Subscriber> {
        let loop = group.next()
        let ready = loop.makePromise(of: Subscriber.self)
        let timer = loop.scheduleTask(in: timeout) { ready.fail(BenchError.timeout("opening and subscribing")) }
        ready.futureResult.whenComplete { _ in timer.cancel() }

        let channelName = options.channel
        let recorder = self.recorder
        let target = options.nextTarget()
        let head = HTTPRequestHead(
            version: .http1_1,
            method: .GET,
            uri: target.webSocketPath,
            headers: HTTPHeaders([("Host", target.hostHeader), ("User-Agent", "switchboard-bench")] + options.authHeaders)
        )
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: 1 << 20) { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            let stats = recorder.stats(on: channel.eventLoop)
                            try channel.pipeline.syncOperations.addHandler(
                                SubscriberHandler(channelName: channelName, stats: stats, ready: ready)
                            )
                        }
                    }
                    let handshake = HandshakeHandler(head: head, ready: ready)
                    let boundHandshake = NIOLoopBound(handshake, eventLoop: channel.eventLoop)
                    try channel.pipeline.syncOperations.addHTTPClientHandlers(
                        leftOverBytesStrategy: .forwardBytes,
                        withClientUpgrade: (
                            upgraders: [upgrader],
                            completionHandler: { context in
                                context.pipeline.syncOperations.removeHandler(boundHandshake.value, promise: nil)
                            }
                        )
                    )
                    try channel.pipeline.syncOperations.addHandler(handshake)
                }
            }
            .connect(host: target.host, port: target.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    // A refusal or time-out after connecting must not leave the socket open.
                    ready.futureResult.whenFailure { _ in channel.close(promise: nil) }
                case .failure(let error):
                    ready.fail(error)
                }
            }
        return ready.futureResult
    }
}

/// Sends the upgrade request; anything but a 101 reaches it and fails the connection.
private final class HandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let head: HTTPRequestHead
    private let ready: EventLoopPromise<Subscriber>

    init(head: HTTPRequestHead, ready: EventLoopPromise<Subscriber>) {
        self.head = head
        self.ready = ready
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let response) = unwrapInboundIn(data) else { return }
        ready.fail(BenchError.handshakeRefused(status: Int(response.status.code), reason: response.status.reasonPhrase))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        ready.fail(BenchError.closed(code: nil))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        ready.fail(error)
        context.close(promise: nil)
    }
}
