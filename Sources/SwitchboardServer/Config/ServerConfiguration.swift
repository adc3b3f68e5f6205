import SwitchboardCore
import SwitchboardPostgres

/// Everything `switchboard serve` runs with, after flags, environment and file are merged.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// `sqlite:PATH`, or `postgres://…` for a cluster (SPEC section 7).
    public var database = "sqlite:./switchboard.sqlite"
    /// Seconds after which a node that stopped reporting is dead and its members leave.
    public var nodeTimeoutSeconds = 15
    /// Peers whose `X-Forwarded-For` and `Forwarded` headers name the client (load balancers).
    public var trustedProxies: [AddressRange] = []
    /// Socket.IO compatibility at `/socket.io/` (SPEC section 8).
    public var socketIO = SocketIOSettings()
    public var allowedOrigins: [String] = []
    public var limits = Limits()
    public var heartbeatSeconds = 25
    /// permessage-deflate (RFC 7692) for WebSocket clients that offer it: messages of 256
    /// bytes or more go compressed, each compressed once for all its subscribers.
    public var compression = true
    public var namespaces = Namespaces.defaults
    public var insecure = false
    public var apiKey: String?
    public var jwtSecret: String?
    /// A PEM file with an RSA (RS256) or P-256 (ES256) public key for tokens.
    public var jwtPublicKeyFile: String?
    /// A JWKS file with public keys for tokens.
    public var jwksFile: String?
    /// PEM files to serve https and wss.
    public var tlsCertificateFile: String?
    public var tlsKeyFile: String?
    /// Seconds a graceful shutdown may take before what is left is cancelled.
    public var drainTimeoutSeconds = 10
    /// How often expired history is deleted.
    public var pruneIntervalSeconds = 60

    public init() {}

    /// No key and no secret: loopback only, everything allowed (SPEC section 5).
    public var developmentMode: Bool { apiKey == nil && jwtSecret == nil && jwtPublicKeyFile == nil && jwksFile == nil }

    public enum DatabaseLocation: Sendable {
        case sqlite(path: String)
        case postgres(PostgresURL)
    }

    /// Where `database` points.
    public func databaseLocation() throws(ConfigurationError) -> DatabaseLocation {
        if database.hasPrefix("sqlite:") {
            let path = String(database.dropFirst("sqlite:".count))
            guard !path.isEmpty else { throw ConfigurationError("--database sqlite:PATH needs a path") }
            return .sqlite(path: path)
        }
        if PostgresURL.isPostgres(database) {
            do {
                return .postgres(try PostgresURL(database))
            } catch {
                throw ConfigurationError(error.description)
            }
        }
        throw ConfigurationError("--database must be sqlite:PATH or postgres://USER@HOST/DB, not \"\(database.prefix(60))\"")
    }

    /// Refuses to serve other hosts without auth unless told `--insecure` (SPEC section 5).
    public func validate() throws(ConfigurationError) {
        guard (1...65535).contains(port) || port == 0 else { throw ConfigurationError("--port must be 0-65535, not \(port)") }
        if developmentMode && !insecure && !Self.isLoopback(host) {
            throw ConfigurationError(
                "refusing to listen on \(host) in development mode (no SWITCHBOARD_API_KEY or SWITCHBOARD_JWT_SECRET): "
                    + "set one of them, or pass --insecure to serve without auth"
            )
        }
        _ = try databaseLocation()
        if (tlsCertificateFile == nil) != (tlsKeyFile == nil) {
            throw ConfigurationError("--tls-cert and --tls-key go together: give both or neither")
        }
        if let apiKey, apiKey.utf8.count < 16 {
            throw ConfigurationError("SWITCHBOARD_API_KEY is \(apiKey.utf8.count) bytes; use at least 16 random bytes (try: openssl rand -hex 24)")
        }
    }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The `socketio` config section (SPEC section 8).
public struct SocketIOSettings: Sendable, Equatable {
    /// Channels every Socket.IO connection joins at connect.
    public var channels: [String] = []
    /// Connection state recovery: a `pid` at connect and an offset with every channel event.
    public var recovery = false

    public init(channels: [String] = [], recovery: Bool = false) {
        self.channels = channels
        self.recovery = recovery
    }
}
