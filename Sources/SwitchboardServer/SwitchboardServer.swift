import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import SwitchboardCore
import SwitchboardStore

/// The Switchboard server: REST and WebSocket on one port, over the node it is given.
public struct SwitchboardServer: Sendable {
    public let configuration: ServerConfiguration
    public let node: Node
    public let limiter: ClientLimiter
    public let metrics: ServerMetrics
    let authenticator: Authenticator
    let gate: HandshakeGate
    let addresses: ClientAddress
    let sessions: SessionEnvironment
    let socketIO: SocketIOServer
    private let tls: TLSConfiguration?
    private let logger: Logger

    /// A server on the database `configuration.database` names.
    public init(configuration: ServerConfiguration, logger: Logger, metrics: ServerMetrics = ServerMetrics()) async throws {
        try configuration.validate()
        let backend = try await Backend.open(configuration, logger: logger)
        try await self.init(configuration: configuration, backend: backend, logger: logger, metrics: metrics)
    }

    /// A server on a store, presence and registry given to it.
    public init(configuration: ServerConfiguration, backend: Backend, logger: Logger, metrics: ServerMetrics = ServerMetrics()) async throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        authenticator = try await Authenticator(configuration: configuration)
        limiter = ClientLimiter(limits: configuration.limits)
        addresses = ClientAddress(trustedProxies: configuration.trustedProxies)
        gate = HandshakeGate(
            origins: OriginPolicy(allowedOrigins: configuration.allowedOrigins, developmentMode: configuration.developmentMode),
            limiter: limiter,
            authenticator: authenticator
        )
        tls = try Self.tlsConfiguration(configuration)
        node = Node(
            store: backend.store, presence: backend.presence, registry: backend.registry,
            namespaces: configuration.namespaces, metrics: metrics, maxMessageBytes: configuration.limits.messageBytes, logger: logger
        )
        sessions = SessionEnvironment(
            configuration: configuration, node: node, authenticator: authenticator, logger: logger, registry: OpenConnections(), limiter: limiter
        )
        socketIO = SocketIOServer(environment: sessions, settings: configuration.socketIO)
    }

    private static func tlsConfiguration(_ c: ServerConfiguration) throws(ConfigurationError) -> TLSConfiguration? {
        guard let certificate = c.tlsCertificateFile, let key = c.tlsKeyFile else { return nil }
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
            let privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
            return TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(privateKey))
        } catch {
            throw ConfigurationError("cannot load TLS certificate \(certificate) and key \(key): \(error)")
        }
    }

    /// The router: REST, fallbacks, operations and the web pages.
    public func makeRouter() -> Router<SwitchboardRequestContext> {
        let origins = OriginPolicy(allowedOrigins: configuration.allowedOrigins, developmentMode: configuration.developmentMode)
        let router = Router(context: SwitchboardRequestContext.self)
        let methods = MethodNotAllowedMiddleware<SwitchboardRequestContext>.Table()
        let web = Bundle.module.path(forResource: "Public", ofType: nil)
        router.middlewares.add(CORSMiddleware(origins: origins))
        router.middlewares.add(MetricsMiddleware(metrics: metrics))
        router.middlewares.add(ProblemMiddleware())
        router.middlewares.add(MethodNotAllowedMiddleware(table: methods, files: web))
        if let web {
            router.middlewares.add(FileMiddleware(web, searchForIndexHtml: true, logger: logger))
        }
        router.middlewares.add(AuthMiddleware(authenticator: authenticator, addresses: addresses))
        CollectionRoutes(node: node, limits: configuration.limits).register(on: router)
        ChannelRoutes(node: node, limits: configuration.limits).register(on: router)
        SystemRoutes(node: node).register(on: router)
        EventStreamRoute(environment: sessions, gate: gate, configuration: configuration, metrics: metrics, logger: logger)
            .register(on: router)
        LongPollRoute(node: node).register(on: router)
        SocketIORoutes(server: socketIO, gate: gate).register(on: router)
        methods.routesRegistered(router.routes)
        return router
    }

    /// Builds the application; `onRunning` gets the bound port once it listens.
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some ApplicationProtocol {
        let router = makeRouter()

        let node = self.node
        let configuration = self.configuration
        let logger = self.logger
        let gate = self.gate
        let limiter = self.limiter
        let addresses = self.addresses
        let webSockets = self.sessions
        let socketIO = self.socketIO
        let requestTimeout = TimeAmount.seconds(Int64(configuration.limits.requestTimeoutSeconds))
        let idleTimeout = Duration.seconds(configuration.limits.requestTimeoutSeconds * 6)
        // HTTP/1.1 and the WebSocket upgrade, guarded against slow first requests.
        var server = HTTPServerBuilder { responder in
            UpgradeChannel(
                    responder: responder,
                    idleTimeout: idleTimeout,
                    firstRequestTimeout: requestTimeout,
                    compression: configuration.compression,
                    admit: { request, remote in
                        let ip = addresses.resolve(peer: remote, forwardedFor: request.forwardedFor, forwarded: request.forwarded)
                        return gate.admitWebSocket(request, ip: ip).map { verdict in
                            var verdict = verdict
                            // An upgrade of a long-polling session that is not here (another
                            // node's, or ended) is refused before the upgrade, as Engine.IO's are.
                            if case .success(let admission) = verdict, case .socketIO(let handshake) = admission.kind,
                               let sid = handshake.sid, socketIO.session(sid) == nil
                            {
                                verdict = .failure(.engineIO(.sessionUnknown))
                            }
                            if case .failure(let refusal) = verdict {
                                logger.info("handshake refused", metadata: ["ip": "\(ip)", "path": "\(request.path)", "reason": "\(refusal.message)"])
                            }
                            return verdict
                        }
                    },
                    accept: { channel, admission in
                        switch admission.kind {
                        case .switchboard(let identity):
                            try WebSocketConnection.accept(channel: channel, environment: webSockets, identity: identity, ip: admission.ip, deflate: admission.deflate)
                        case .socketIO(let handshake):
                            try EngineIOWebSocket.accept(channel: channel, server: socketIO, handshake: handshake, deflate: admission.deflate)
                        }
                    }
            )
        }
        if let tls { server = try .tls(server, tlsConfiguration: tls) }
        let scheme = tls == nil ? "http" : "https"
        let host = configuration.host
        let mode = configuration.developmentMode
        return Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "switchboard"),
            services: [
                // The store stops last (services stop in reverse order): what runs above it
                // finishes its writes first.
                StoreService(store: node.store),
                NodeReporter(node: node, logger: logger),
                Housekeeping(store: node.store, limiter: limiter, interval: .seconds(configuration.pruneIntervalSeconds), logger: logger),
                StatsPublisher(node: node, logger: logger),
                socketIO,
                // Shut down after the server has stopped accepting (services stop in reverse order).
                webSockets.registry,
            ],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let shownHost = host.contains(":") ? "[\(host)]" : host
                logger.info("listening on \(scheme)://\(shownHost):\(port)")
                if mode {
                    let reach = ServerConfiguration.isLoopback(host)
                        ? "serving loopback only" : "serving \(shownHost) without auth (--insecure): anyone who reaches it may do everything"
                    logger.notice(
                        "development mode: no SWITCHBOARD_API_KEY or SWITCHBOARD_JWT_SECRET is set, so every client may do everything; \(reach)"
                    )
                }
                await onRunning(port)
            },
            logger: logger
        )
    }
}

/// Runs the store's background work (listeners, pollers) for as long as the server runs.
struct StoreService: Service {
    let store: any Store

    func run() async throws {
        try await store.run()
        // A store with nothing to run waits like the others for the end.
        try? await gracefulShutdown()
    }
}

/// Once a minute: deletes history past its age limit and forgets idle client addresses.
struct Housekeeping: Service {
    let store: any Store
    let limiter: ClientLimiter
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            limiter.sweep()
            do {
                let removed = try await store.pruneExpired(nowMillis: Timestamp.nowMilliseconds())
                if removed > 0 { logger.debug("pruned expired history", metadata: ["messages": "\(removed)"]) }
            } catch {
                logger.warning("pruning history failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
