import ArgumentParser
import Foundation
import NIOCore
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import SwitchboardServer

/// `switchboard serve`: flags, then `SWITCHBOARD_<OPTION>` environment variables, then the config file.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (SQLite at ./switchboard.sqlite by default).")

    @Option(help: "Address to listen on (default 127.0.0.1). Env: SWITCHBOARD_HOST.")
    var host: String?

    @Option(help: "Port to listen on; 0 picks a free one and logs it (default 8080). Env: SWITCHBOARD_PORT.")
    var port: Int?

    @Option(help: "sqlite:PATH (default sqlite:./switchboard.sqlite), or postgres://USER[:PASSWORD]@HOST[:PORT]/DB for a cluster. Env: SWITCHBOARD_DATABASE.")
    var database: String?

    @Option(help: "Config file, YAML or JSON. Env: SWITCHBOARD_CONFIG.")
    var config: String?

    @Option(help: "TLS certificate chain (PEM) to serve https and wss. Env: SWITCHBOARD_TLS_CERT.")
    var tlsCert: String?

    @Option(help: "TLS private key (PEM). Env: SWITCHBOARD_TLS_KEY.")
    var tlsKey: String?

    @Option(help: "RS256 or ES256 public key (PEM) for tokens. Env: SWITCHBOARD_JWT_PUBLIC_KEY.")
    var jwtPublicKey: String?

    @Option(help: "JWKS file with public keys for tokens. Env: SWITCHBOARD_JWKS.")
    var jwks: String?

    @Flag(help: "Allow listening beyond loopback without auth. Env: SWITCHBOARD_INSECURE=1.")
    var insecure = false

    @Option(help: "Seconds to drain on SIGTERM or SIGINT before closing what is left (default 10). Env: SWITCHBOARD_DRAIN_TIMEOUT.")
    var drainTimeout: Int?

    @Option(help: "text or json (default text). Env: SWITCHBOARD_LOG_FORMAT.")
    var logFormat: String?

    @Option(help: "trace, debug, info, notice, warning, error (default info). Env: SWITCHBOARD_LOG_LEVEL.")
    var logLevel: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        func env(_ name: String) -> String? {
            environment["SWITCHBOARD_\(name)"].flatMap { $0.isEmpty ? nil : $0 }
        }
        do {
            var configuration = ServerConfiguration()
            if let path = config ?? env("CONFIG") {
                try ConfigFile.load(path: path, into: &configuration)
            }
            // Environment over the file, flags over the environment.
            if let v = host ?? env("HOST") { configuration.host = v }
            if let v = try port ?? env("PORT").map({ try Self.int($0, name: "SWITCHBOARD_PORT") }) { configuration.port = v }
            if let v = database ?? env("DATABASE") { configuration.database = v }
            if insecure || ["1", "true", "yes"].contains(env("INSECURE")?.lowercased() ?? "") { configuration.insecure = true }
            if let v = tlsCert ?? env("TLS_CERT") { configuration.tlsCertificateFile = v }
            if let v = tlsKey ?? env("TLS_KEY") { configuration.tlsKeyFile = v }
            if let v = jwtPublicKey ?? env("JWT_PUBLIC_KEY") { configuration.jwtPublicKeyFile = v }
            if let v = jwks ?? env("JWKS") { configuration.jwksFile = v }
            // Secrets come from the environment only, never from flags (they would show in `ps`).
            configuration.apiKey = env("API_KEY")
            configuration.jwtSecret = env("JWT_SECRET")

            if let v = try drainTimeout ?? env("DRAIN_TIMEOUT").map({ try Self.int($0, name: "SWITCHBOARD_DRAIN_TIMEOUT") }) {
                configuration.drainTimeoutSeconds = v
            }

            let logger = try Self.makeLogger(format: logFormat ?? env("LOG_FORMAT") ?? "text", level: logLevel ?? env("LOG_LEVEL") ?? "info")
            logger.info("threads", metadata: [
                "event_loops": "\(NIOSingletons.groupLoopCountSuggestion)",
                "tasks_on_event_loops": "\(Threads.concurrencyOnEventLoops)",
            ])
            // One registry for our metrics and anything that reports through swift-metrics.
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            let server = try await SwitchboardServer(configuration: configuration, logger: logger, metrics: ServerMetrics(registry: registry))
            // SIGTERM or SIGINT: stop accepting, close WebSockets with 1012, end streams and
            // polls, let in-flight requests finish, and give up after the drain timeout.
            var group = ServiceGroupConfiguration(
                services: [try server.application()],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
            group.maximumGracefulShutdownDuration = .seconds(configuration.drainTimeoutSeconds)
            group.maximumCancellationDuration = .seconds(5)
            try await ServiceGroup(configuration: group).run()
            logger.info("stopped")
        } catch let error as ConfigurationError {
            Self.fail(error.description)
        }
    }

    static func makeLogger(format: String, level: String) throws(ConfigurationError) -> Logger {
        guard let level = Logger.Level(rawValue: level) else {
            throw ConfigurationError("--log-level must be one of trace, debug, info, notice, warning, error, critical; not \"\(level)\"")
        }
        var logger: Logger
        switch format {
        case "text": logger = Logger(label: "switchboard", factory: { StreamLogHandler.standardError(label: $0) })
        case "json": logger = Logger(label: "switchboard", factory: { JSONLogHandler(label: $0) })
        default: throw ConfigurationError("--log-format must be text or json, not \"\(format)\"")
        }
        logger.logLevel = level
        return logger
    }

    static func int(_ text: String, name: String) throws(ConfigurationError) -> Int {
        guard let n = Int(text) else { throw ConfigurationError("\(name) must be a number, not \"\(text)\"") }
        return n
    }

    /// One line naming the problem, and a non-zero exit.
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("switchboard: error: \(message)\n".utf8))
        Foundation.exit(2)
    }
}
