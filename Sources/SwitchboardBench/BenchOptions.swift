import Foundation
import Synchronization

/// Where and as whom to connect: everything the three scenarios share.
public struct BenchOptions: Sendable {
    /// One server, or the nodes of a cluster: connections take them in turn.
    public let targets: [BenchTarget]
    /// Where publishers connect: `targets` unless told otherwise (publish on one node,
    /// subscribe on the others, to measure delivery across a cluster).
    public let publishTargets: [BenchTarget]
    private let rotation = Rotation()
    private let publishRotation = Rotation()
    /// A JWT, sent as `Authorization: Bearer` on the WebSocket handshake and REST calls.
    public let token: String?
    /// An API key, sent as `X-API-Key`.
    public let apiKey: String?
    public let channel: String
    /// Event loop threads for the client.
    public let threads: Int
    /// No progress line on stderr.
    public let quiet: Bool

    public init(url: String, token: String?, apiKey: String?, channel: String, threads: Int?, quiet: Bool) throws {
        try self.init(urls: [url], token: token, apiKey: apiKey, channel: channel, threads: threads, quiet: quiet)
    }

    public init(
        urls: [String], publishURLs: [String] = [], token: String?, apiKey: String?, channel: String, threads: Int?, quiet: Bool
    ) throws {
        guard !urls.isEmpty else { throw BenchError.badOption("give at least one --url") }
        guard channel.utf8.count <= 200, !channel.isEmpty,
              channel.utf8.allSatisfy({ Self.channelBytes.contains($0) })
        else { throw BenchError.badOption("--channel must be 1-200 of A-Z a-z 0-9 _ . : @ -, not \"\(channel)\"") }
        if let threads, threads < 1 { throw BenchError.badOption("--threads must be at least 1") }
        self.targets = try urls.map(BenchTarget.init(url:))
        self.publishTargets = publishURLs.isEmpty ? targets : try publishURLs.map(BenchTarget.init(url:))
        self.token = token
        self.apiKey = apiKey
        self.channel = channel
        self.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        self.quiet = quiet
    }

    /// The first target, which reports name.
    public var target: BenchTarget { targets[0] }

    /// The WebSocket URLs, comma-separated, for reports.
    public var webSocketURLs: String { targets.map(\.webSocketURL).joined(separator: ",") }

    /// The target for the next connection: round robin over `targets`.
    func nextTarget() -> BenchTarget {
        targets[rotation.next() % targets.count]
    }

    /// The target for the next publisher connection.
    func nextPublishTarget() -> BenchTarget {
        publishTargets[publishRotation.next() % publishTargets.count]
    }

    /// Credential headers for every request and handshake.
    var authHeaders: [(String, String)] {
        var headers: [(String, String)] = []
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        if let apiKey { headers.append(("X-API-Key", apiKey)) }
        return headers
    }

    private static let channelBytes = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:@-".utf8)
}

/// Hands out 0, 1, 2, … to connections made from any thread.
private final class Rotation: Sendable {
    private let counter = Atomic<Int>(0)
    func next() -> Int { counter.wrappingAdd(1, ordering: .relaxed).oldValue }
}

/// The server's address, from `--url` (`http://HOST:PORT[/prefix]`).
public struct BenchTarget: Sendable {
    public let host: String
    public let port: Int
    /// A path the API is mounted under behind a proxy, without a trailing slash; usually "".
    public let pathPrefix: String

    public init(url: String) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw BenchError.badOption("--url \"\(url)\" is not a URL; try http://127.0.0.1:8080")
        }
        switch scheme {
        case "http": break
        case "https", "wss":
            throw BenchError.badOption("--url: TLS (https/wss) is not supported by bench yet; point it at an http:// listener")
        default:
            throw BenchError.badOption("--url must start with http://, not \(scheme)://")
        }
        guard var host = components.host, !host.isEmpty else { throw BenchError.badOption("--url \"\(url)\" has no host") }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host
        self.port = components.port ?? 80
        var prefix = components.path
        while prefix.hasSuffix("/") { prefix.removeLast() }
        self.pathPrefix = prefix
    }

    /// The `Host` header: IPv6 literals in brackets.
    var hostHeader: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    var webSocketPath: String { pathPrefix + "/v1/ws" }
    /// Channel names need no escaping in a path: their characters are all path-safe.
    func messagesPath(channel: String) -> String { pathPrefix + "/v1/channels/\(channel)/messages" }
    /// For reports: the URL the WebSocket connects to.
    public var webSocketURL: String { "ws://\(hostHeader)\(webSocketPath)" }
}

public enum BenchError: Error, CustomStringConvertible {
    case badOption(String)
    case handshakeRefused(status: Int, reason: String)
    case commandRefused(code: String, message: String)
    case publishRefused(String)
    case closed(code: UInt16?)
    case timeout(String)
    case nothingConnected(String)

    public var description: String {
        switch self {
        case .badOption(let message): message
        case .handshakeRefused(let status, let reason): "handshake refused: HTTP \(status) \(reason)"
        case .commandRefused(let code, let message): "refused: \(code): \(message)"
        case .publishRefused(let failure): "every publish failed: \(failure)"
        case .closed(let code): code.map { "closed by the server with \($0)" } ?? "connection closed"
        case .timeout(let what): "timed out \(what)"
        case .nothingConnected(let why): "no subscriber connected (\(why))"
        }
    }
}
