/// Why a connection ends, and what its client should do then: one table for every close
/// the server makes (SPEC section 3), whatever the transport. `/v1/ws` sends the code and
/// reason in its close frame, SSE in its `close` event; Socket.IO says "do not reconnect"
/// with a DISCONNECT packet and "reconnect" by closing its transport.
public struct CloseReason: Sendable, Equatable, CustomStringConvertible {
    public enum Reconnect: Sendable, Equatable {
        /// Do not reconnect as is: fix the request, the credentials or the client.
        case no
        /// Reconnect at once (elsewhere, or here when it is back) and resume.
        case now
        /// Reconnect after a backoff and resume.
        case withBackoff
        /// Get a new token, then reconnect and resume.
        case withNewToken
    }

    public let code: UInt16
    public let reason: String
    public let reconnect: Reconnect

    public init(code: UInt16, reason: String, reconnect: Reconnect) {
        self.code = code
        self.reason = reason
        self.reconnect = reconnect
    }

    public var description: String { "\(code) \(reason)" }

    public static let normal = CloseReason(code: 1000, reason: "", reconnect: .no)
    public static func goingAway(_ why: String) -> Self { .init(code: 1001, reason: why, reconnect: .now) }
    public static func protocolError(_ why: String) -> Self { .init(code: 1002, reason: why, reconnect: .no) }
    public static func invalidData(_ why: String) -> Self { .init(code: 1007, reason: why, reconnect: .no) }
    public static func policy(_ why: String) -> Self { .init(code: 1008, reason: why, reconnect: .no) }
    public static func tooBig(_ why: String) -> Self { .init(code: 1009, reason: why, reconnect: .no) }
    public static func internalError(_ why: String) -> Self { .init(code: 1011, reason: why, reconnect: .withBackoff) }
    public static let restart = CloseReason(code: 1012, reason: "server restarting; reconnect", reconnect: .now)
    public static func badRequest(_ why: String) -> Self { .init(code: 4000, reason: why, reconnect: .no) }
    public static func unauthorized(_ why: String) -> Self { .init(code: 4001, reason: "unauthorized: \(why)", reconnect: .no) }
    public static func forbidden(_ why: String) -> Self { .init(code: 4003, reason: why, reconnect: .no) }
    public static func slowConsumer(queueBytes: Int) -> Self {
        .init(code: 4100, reason: "slow consumer: more than \(queueBytes) bytes waiting; reconnect and resume", reconnect: .withBackoff)
    }
    public static let slowCatchUp = CloseReason(
        code: 4100, reason: "slow consumer: too many messages during catch-up; reconnect and resume", reconnect: .withBackoff
    )
    public static func missed(channel: String) -> Self {
        .init(code: 4100, reason: "missed messages of \(channel) on this node; reconnect and resume", reconnect: .withBackoff)
    }
    public static let tokenExpired = CloseReason(code: 4101, reason: "token expired; reconnect with a new token", reconnect: .withNewToken)
    public static let rateLimited = CloseReason(code: 4129, reason: "rate limited: too many commands; reconnect later", reconnect: .withBackoff)

    /// What a client must do for a code it received (SPEC section 3), for codes it did not
    /// get from this table (1006 from a dropped connection, codes of a newer server).
    public static func reconnect(forCode code: UInt16) -> Reconnect {
        switch code {
        case 1000, 1002, 1003, 1007, 1008, 1009, 1010, 4000..<4100: .no
        case 1001, 1012: .now
        case 4101: .withNewToken
        default: .withBackoff
        }
    }
}
