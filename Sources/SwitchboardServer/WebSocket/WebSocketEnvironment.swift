import Logging
import NIOCore

/// What every WebSocket connection of a server runs with, made once and shared: connections
/// hold one reference to it instead of copies, since per-connection memory is what limits
/// how many connections a node holds.
final class WebSocketEnvironment: Sendable {
    let node: Node
    let authenticator: Authenticator
    let logger: Logger
    let outboxes: PerEventLoop<LoopOutbox>
    let heartbeats: PerEventLoop<LoopHeartbeat>
    let registry: WebSocketSessions
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
        registry: WebSocketSessions
    ) {
        self.node = node
        self.authenticator = authenticator
        self.logger = logger
        self.registry = registry
        let flushInterval = TimeAmount.milliseconds(Int64(configuration.flushIntervalMilliseconds))
        self.outboxes = PerEventLoop { LoopOutbox(eventLoop: $0, interval: flushInterval) }
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
}
