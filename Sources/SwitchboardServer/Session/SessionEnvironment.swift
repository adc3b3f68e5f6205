import Logging
import NIOCore
import SwitchboardCore

/// What every long-lived connection of a server (WebSocket, SSE, Socket.IO) runs with, made
/// once and shared: connections hold one reference to it instead of copies, since
/// per-connection memory is what limits how many connections a node holds.
final class SessionEnvironment: Sendable {
    let node: Node
    let authenticator: Authenticator
    let logger: Logger
    let outboxes: PerEventLoop<LoopOutbox>
    let heartbeats: PerEventLoop<LoopHeartbeat>
    let registry: OpenConnections
    /// Per-IP connection counts (SPEC.md section 5).
    let limiter: ClientLimiter
    /// Largest frame or message accepted (1009 above it).
    let maxMessageBytes: Int
    let heartbeatSeconds: Int
    /// How long to wait for the peer's close frame before dropping the connection.
    let closeTimeout: TimeAmount
    /// Most bytes waiting to be written before the connection is closed with 4100.
    let queueBytes: Int
    let commandsPerSecond: Int
    let commandBurst: Int
    let subscriptions: Int

    init(
        configuration: ServerConfiguration, node: Node, authenticator: Authenticator, logger: Logger,
        registry: OpenConnections, limiter: ClientLimiter
    ) {
        self.node = node
        self.authenticator = authenticator
        self.logger = logger
        self.registry = registry
        self.limiter = limiter
        self.outboxes = PerEventLoop { LoopOutbox(eventLoop: $0) }
        let heartbeat = TimeAmount.seconds(Int64(configuration.heartbeatSeconds))
        self.heartbeats = PerEventLoop { LoopHeartbeat(eventLoop: $0, interval: heartbeat) }
        let limits = configuration.limits
        self.maxMessageBytes = limits.messageBytes
        self.heartbeatSeconds = configuration.heartbeatSeconds
        self.closeTimeout = .seconds(5)
        self.queueBytes = limits.queueBytes
        self.commandsPerSecond = limits.commandsPerSecond
        self.commandBurst = limits.commandBurst
        self.subscriptions = limits.subscriptions
    }

    /// The frame handler of an upgraded WebSocket, not yet in its pipeline (its receiver is
    /// attached first): the channel's write-buffer water marks set from the queue limit, so
    /// that it turns unwritable at half of it and writable again at a quarter.
    func makeHandler(for channel: any Channel, deflate: Bool) throws -> WebSocketHandler {
        try channel.syncOptions?.setOption(.writeBufferWaterMark, value: .init(low: queueBytes / 4, high: queueBytes / 2))
        return WebSocketHandler(settings: self, heartbeat: heartbeats(channel.eventLoop), deflate: deflate)
    }

    /// The answer to a command over the rate (SPEC section 5), on every transport.
    var commandRateRefusal: ProtocolError {
        ProtocolError(.rateLimited, "more than \(commandsPerSecond) commands a second (burst \(commandBurst)); slow down")
    }

    /// A new client session for a connection.
    func makeSession(identity: Identity, output: any SessionOutput) -> ClientSession {
        ClientSession(
            identity: identity, node: node, authenticator: authenticator,
            maxSubscriptions: subscriptions, logger: logger, output: output
        )
    }
}
