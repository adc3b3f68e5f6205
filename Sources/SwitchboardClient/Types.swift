import Foundation
import Logging
@_exported import SwitchboardProtocol

/// Where a client's connection is (mirrors `/switchboard.js`'s states).
public enum ConnectionState: Sendable, Equatable {
    case connecting
    case connected
    /// Lost; the next attempt comes after this delay (full-jitter backoff, or none after a
    /// server restart).
    case reconnecting(after: Duration)
    /// Stopped for good: by `disconnect()`, or by the server (a 4000–4099 close: bad
    /// request, bad credentials, forbidden) or a token provider that gave up.
    case disconnected(DisconnectReason)
}

/// Why a client stopped.
public struct DisconnectReason: Error, Sendable, Equatable, CustomStringConvertible {
    /// The WebSocket close code, when the server closed the connection.
    public var code: UInt16?
    public var message: String

    public init(code: UInt16?, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { code.map { "\($0) \(message)" } ?? message }

    public static let closedByClient = DisconnectReason(code: 1000, message: "disconnected by the client")
}

/// What a subscription yields, in offset order.
public enum ChannelEvent: Sendable, Equatable {
    case message(ReceivedMessage)
    /// A member joined (when subscribed with `presence: true`).
    case join(Member)
    case leave(Member)
    /// The subscription could not resume where it was (the position fell out of history, or
    /// the server's history was reset): messages go on from `Position`, and the app reloads
    /// its state (for a collection, its records).
    case reset(Position)
}

extension ReceivedMessage {
    /// The data decoded as `T`.
    public func decode<T: Decodable>(_ type: T.Type, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        try decoder.decode(T.self, from: Data(data.serialized.utf8))
    }
}

/// Errors a client's calls throw.
public enum SwitchboardClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server refused the request (`forbidden`, `bad_request`, …); retrying as is will not help.
    case refused(ProtocolError)
    /// The client is stopped (`disconnect()`, or the server told it not to reconnect).
    case stopped(DisconnectReason)
    /// The call did not complete in time (the server was unreachable, or kept answering `unavailable`).
    case timedOut(String)
    /// A REST call failed.
    case http(status: Int, body: String)

    public var description: String {
        switch self {
        case .refused(let error): "refused: \(error)"
        case .stopped(let reason): "stopped: \(reason)"
        case .timedOut(let what): "timed out: \(what)"
        case .http(let status, let body): "HTTP \(status): \(body.prefix(200))"
        }
    }
}

/// How a client behaves; the defaults suit most apps.
public struct ClientConfiguration: Sendable {
    /// Delays between reconnection attempts.
    public var backoff = Backoff()
    /// Events a subscription holds for a consumer that has not taken them; beyond it the
    /// connection stops reading (and the server closes it as a slow consumer after its
    /// queue limit; the client resumes).
    public var subscriptionBuffer = 1024
    /// How long `publish`, `history` and `presence` keep trying through lost connections
    /// and `unavailable` answers.
    public var requestTimeout: Duration = .seconds(30)
    /// Refresh a JWT before it expires (asking the token provider for a new one).
    public var refreshTokens = true
    /// Largest frame accepted from the server.
    public var maxFrameSize = 1 << 24
    public var logger = Logger(label: "switchboard-client")

    public init() {}
}
