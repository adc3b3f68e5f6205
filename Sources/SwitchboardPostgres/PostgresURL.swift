import Foundation
import NIOSSL
import PostgresNIO

/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=…&host=/socket/dir]` (also
/// `postgresql://`), as SPEC section 7 and libpq take it. `host=` in the query names a Unix
/// socket directory (the socket is `DIR/.s.PGSQL.PORT`).
public struct PostgresURL: Sendable, CustomStringConvertible {
    public enum SSLMode: String, Sendable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var user: String
    public var password: String?
    public var host: String?
    public var port: Int
    public var socketDirectory: String?
    public var database: String
    public var sslMode: SSLMode

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    public init(_ text: String) throws(Invalid) {
        guard Self.isPostgres(text), let components = URLComponents(string: text) else {
            throw Invalid(description: "--database postgres:// must look like postgres://USER[:PASSWORD]@HOST[:PORT]/DB")
        }
        var host = components.host.flatMap { $0.isEmpty ? nil : $0.removingPercentEncoding ?? $0 }
        if let h = host, h.hasPrefix("["), h.hasSuffix("]") { host = String(h.dropFirst().dropLast()) }
        var socketDirectory: String?
        var sslMode = SSLMode.prefer
        var user = components.user?.removingPercentEncoding
        var password = components.password?.removingPercentEncoding
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else {
                    throw Invalid(description: "sslmode must be disable, allow, prefer, require, verify-ca or verify-full, not \"\(value)\"")
                }
                sslMode = mode
            case "host":
                if value.hasPrefix("/") { socketDirectory = value } else { host = value }
            case "user": user = value
            case "password": password = value
            case "application_name", "connect_timeout":
                continue
            default:
                throw Invalid(description: "unknown parameter \"\(item.name)\" in the database URL (known: sslmode, host, user, password)")
            }
        }
        guard let user, !user.isEmpty else { throw Invalid(description: "the database URL needs a user: postgres://USER@HOST/DB") }
        let database = String(components.path.drop(while: { $0 == "/" })).removingPercentEncoding ?? ""
        guard !database.isEmpty else { throw Invalid(description: "the database URL needs a database name: postgres://USER@HOST/DB") }
        guard host != nil || socketDirectory != nil else {
            throw Invalid(description: "the database URL needs a host, or ?host=/socket/dir for a Unix socket")
        }
        self.user = user
        self.password = password
        self.host = socketDirectory == nil ? host : nil
        self.port = components.port ?? 5432
        self.socketDirectory = socketDirectory
        self.database = database
        self.sslMode = socketDirectory == nil ? sslMode : .disable
    }

    /// The URL without its password, for logs.
    public var description: String {
        let place = socketDirectory.map { "?host=\($0)" } ?? "\(host ?? ""):\(port)"
        return socketDirectory == nil ? "postgres://\(user)@\(place)/\(database)" : "postgres://\(user)@/\(database)\(place)"
    }

    private var socketPath: String? {
        socketDirectory.map { "\($0)/.s.PGSQL.\(port)" }
    }

    private func tlsConfiguration() -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case .verifyFull: break
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        default: tls.certificateVerification = .none
        }
        return tls
    }

    /// Settings every connection starts with: a name in `pg_stat_activity`, and a limit on
    /// how long a transaction may sit idle, so that a hung node cannot hold a channel's
    /// counter lock for long.
    static func startupParameters(node: String) -> [(String, String)] {
        [("application_name", "switchboard \(node)"), ("idle_in_transaction_session_timeout", "10s")]
    }

    func clientConfiguration(node: String) -> PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketPath {
            configuration = .init(unixSocketPath: socketPath, username: user, password: password, database: database)
        } else {
            let tls: PostgresClient.Configuration.TLS
            switch sslMode {
            case .disable: tls = .disable
            case .allow, .prefer: tls = .prefer(tlsConfiguration())
            case .require, .verifyCA, .verifyFull: tls = .require(tlsConfiguration())
            }
            configuration = .init(host: host!, port: port, username: user, password: password, database: database, tls: tls)
        }
        configuration.options.additionalStartupParameters = Self.startupParameters(node: node)
        configuration.options.connectTimeout = .seconds(3)
        configuration.options.maximumConnections = 16
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(10))
        return configuration
    }

    func connectionConfiguration(node: String) throws -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let socketPath {
            configuration = .init(unixSocketPath: socketPath, username: user, password: password, database: database)
        } else {
            let tls: PostgresConnection.Configuration.TLS
            switch sslMode {
            case .disable: tls = .disable
            case .allow, .prefer: tls = .prefer(try NIOSSLContext(configuration: tlsConfiguration()))
            case .require, .verifyCA, .verifyFull: tls = .require(try NIOSSLContext(configuration: tlsConfiguration()))
            }
            configuration = .init(host: host!, port: port, username: user, password: password, database: database, tls: tls)
        }
        configuration.options.additionalStartupParameters = Self.startupParameters(node: node)
        configuration.options.connectTimeout = .seconds(3)
        return configuration
    }
}
