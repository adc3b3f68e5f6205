import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle
import SwitchboardCore
import SwitchboardStore

/// The Switchboard server: REST and WebSocket on one port over one store and hub.
public struct SwitchboardServer: Sendable {
    public let configuration: ServerConfiguration
    public let broker: Broker
    private let logger: Logger

    public init(configuration: ServerConfiguration, logger: Logger) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        let store = try SQLiteStore(path: configuration.sqlitePath())
        self.broker = Broker(store: store, hub: Hub(), namespaces: configuration.namespaces)
    }

    /// Builds the application; `onRunning` gets the bound port once it listens.
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(ProblemMiddleware())
        CollectionRoutes(broker: broker, limits: configuration.limits).register(on: router)
        ChannelRoutes(broker: broker, limits: configuration.limits).register(on: router)
        SystemRoutes(broker: broker).register(on: router)

        let webSocketRouter = Router(context: BasicWebSocketRequestContext.self)
        let broker = self.broker
        let configuration = self.configuration
        let logger = self.logger
        webSocketRouter.ws("v1/ws") { _, _ in
            .upgrade([:])
        } onUpgrade: { inbound, outbound, _ in
            let session = WebSocketSession(broker: broker, configuration: configuration, logger: logger)
            await session.run(inbound: inbound, outbound: outbound)
        }

        let webSocket = WebSocketServerConfiguration(
            maxFrameSize: configuration.limits.messageBytes,
            autoPing: .enabled(timePeriod: .seconds(Int64(configuration.heartbeatSeconds))),
            closeTimeout: .seconds(5),
            validateUTF8: true
        )
        let host = configuration.host
        let mode = configuration.developmentMode
        return Application(
            router: router,
            server: .http1WebSocketUpgrade(webSocketRouter: webSocketRouter, configuration: .init(ws: webSocket)),
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "switchboard"),
            services: [HistoryPruner(store: broker.store, interval: .seconds(configuration.pruneIntervalSeconds), logger: logger)],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let shownHost = host.contains(":") ? "[\(host)]" : host
                logger.info("listening on http://\(shownHost):\(port)")
                if mode {
                    logger.notice(
                        "development mode: no SWITCHBOARD_API_KEY or SWITCHBOARD_JWT_SECRET is set, so every client may do everything; serving loopback only"
                    )
                }
                await onRunning(port)
            },
            logger: logger
        )
    }
}

/// Deletes history past its namespace's age limit, once a minute.
struct HistoryPruner: Service {
    let store: any Store
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            do {
                let removed = try await store.pruneExpired(nowMillis: Timestamp.nowMilliseconds())
                if removed > 0 { logger.debug("pruned expired history", metadata: ["messages": "\(removed)"]) }
            } catch {
                logger.warning("pruning history failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
