import Hummingbird
import SwitchboardCore

/// The checks every long-lived connection passes before it is accepted (WebSocket now, SSE
/// later): the Origin (Cross-Site WebSocket Hijacking), per-IP limits, and the credential.
struct HandshakeGate: Sendable {
    let origins: OriginPolicy
    let limiter: ClientLimiter
    let authenticator: Authenticator

    /// The identity to run the connection with, or the refusal: 403, 429 or 401.
    func admit(_ request: HandshakeRequest, ip: String) async throws(ProtocolError) -> Identity {
        guard origins.allows(origin: request.origin, host: request.host) else {
            throw ProtocolError.forbidden("origin \(request.origin ?? "") is not allowed to connect")
        }
        if let refusal = limiter.admitHandshake(ip: ip) { throw refusal }
        return try await authenticator.identify(request.credential)
    }
}
