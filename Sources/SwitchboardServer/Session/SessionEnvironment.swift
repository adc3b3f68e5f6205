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
    let namespaces: Namespaces

    init(
        configuration: ServerConfiguration, node: Node, authenticator: Authenticator, logger: Logger,
        registry: OpenConnections
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
        self.namespaces = configuration.namespaces
    }

    /// A new client session for a connection of `transport`.
    func makeSession(transport: String, identity: Identity, output: any SessionOutput) -> ClientSession {
        ClientSession(
            transport: transport, identity: identity, node: node, authenticator: authenticator,
            maxSubscriptions: subscriptions, logger: logger, output: output
        )
    }
}
