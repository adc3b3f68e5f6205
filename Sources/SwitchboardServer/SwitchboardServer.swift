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

/// The Switchboard server: REST and WebSocket on one port over one store and hub.
public struct SwitchboardServer: Sendable {
    public let configuration: ServerConfiguration
    public let broker: Broker
    public let limiter: ClientLimiter
    public let metrics: ServerMetrics
    let authenticator: Authenticator
    let gate: HandshakeGate
    private let tls: TLSConfiguration?
    private let logger: Logger

    public init(configuration: ServerConfiguration, logger: Logger, metrics: ServerMetrics = ServerMetrics()) async throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        authenticator = try await Authenticator(configuration: configuration)
        limiter = ClientLimiter(limits: configuration.limits)
        gate = HandshakeGate(
            origins: OriginPolicy(allowedOrigins: configuration.allowedOrigins, developmentMode: configuration.developmentMode),
            limiter: limiter,
            authenticator: authenticator
        )
        tls = try Self.tlsConfiguration(configuration)
        let store = try SQLiteStore(path: configuration.sqlitePath())
        broker = Broker(store: store, hub: Hub(), namespaces: configuration.namespaces, metrics: metrics)
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
        router.middlewares.add(CORSMiddleware(origins: origins))
        router.middlewares.add(MetricsMiddleware(metrics: metrics))
        router.middlewares.add(ProblemMiddleware())
        if let web = Bundle.module.path(forResource: "Public", ofType: nil) {
            router.middlewares.add(FileMiddleware(web, searchForIndexHtml: true, logger: logger))
        }
        router.middlewares.add(AuthMiddleware(authenticator: authenticator))
        CollectionRoutes(broker: broker, limits: configuration.limits).register(on: router)
        ChannelRoutes(broker: broker, limits: configuration.limits).register(on: router)
        SystemRoutes(broker: broker).register(on: router)
        EventStreamRoute(broker: broker, gate: gate, limiter: limiter, configuration: configuration, metrics: metrics, logger: logger)
            .register(on: router)
        LongPollRoute(broker: broker).register(on: router)
        return router
    }

    /// Builds the application; `onRunning` gets the bound port once it listens.
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some ApplicationProtocol {
        let router = makeRouter()

        let broker = self.broker
        let configuration = self.configuration
        let logger = self.logger
        let gate = self.gate
        let limiter = self.limiter
        let authenticator = self.authenticator
        let sessions = WebSocketSessions()
        let webSockets = WebSocketEnvironment(
            configuration: configuration, broker: broker, authenticator: authenticator, logger: logger, registry: sessions
        )
        let requestTimeout = TimeAmount.seconds(Int64(configuration.limits.requestTimeoutSeconds))
        let idleTimeout = Duration.seconds(configuration.limits.requestTimeoutSeconds * 6)
        // HTTP/1.1 and the WebSocket upgrade, guarded against slow first requests.
        var server = HTTPServerBuilder { responder in
            RequestTimeoutChannel(
                base: UpgradeChannel(
                    responder: responder,
                    idleTimeout: idleTimeout,
                    maxMessageBytes: configuration.limits.messageBytes,
                    admit: { request, remote in
                        let ip = ClientLimiter.ip(of: remote)
                        do throws(ProtocolError) {
                            let identity = try await gate.admit(request, ip: ip)
                            return .success(Admission(identity: identity, ip: ip))
                        } catch {
                            logger.info("handshake refused", metadata: ["ip": "\(ip)", "reason": "\(error.message)"])
                            return .failure(error)
                        }
                    },
                    accept: { channel, admission in
                        try WebSocketSession.accept(channel: channel, environment: webSockets, identity: admission.identity)
                        limiter.connectionOpened(ip: admission.ip)
                        channel.closeFuture.whenComplete { _ in limiter.connectionClosed(ip: admission.ip) }
                    }
                ),
                timeout: requestTimeout
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
                Housekeeping(store: broker.store, limiter: limiter, interval: .seconds(configuration.pruneIntervalSeconds), logger: logger),
                StatsPublisher(broker: broker, logger: logger),
                // Shut down after the server has stopped accepting (services stop in reverse order).
                sessions,
            ],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let shownHost = host.contains(":") ? "[\(host)]" : host
                logger.info("listening on \(scheme)://\(shownHost):\(port)")
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
