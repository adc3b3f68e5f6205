import Hummingbird
import SwitchboardCore

/// The checks every long-lived connection passes before it is accepted (WebSocket now, SSE
/// later): the Origin (Cross-Site WebSocket Hijacking), per-IP limits, and the credential.
struct HandshakeGate: Sendable {
    let origins: OriginPolicy
    let limiter: ClientLimiter
    let authenticator: Authenticator

    /// The identity to run the connection with, or the refusal: 403, 429 or 401.
    /// `consume: false` re-checks without spending a handshake token (the refusal path).
    func admit(_ request: Request, ip: String, consume: Bool = true) async throws(ProtocolError) -> Identity {
        let origin = request.headers[.origin]
        guard origins.allows(origin: origin, host: request.head.authority) else {
            throw ProtocolError.forbidden("origin \(origin ?? "") is not allowed to connect")
        }
        if let refusal = limiter.admitHandshake(ip: ip, consume: consume) { throw refusal }
        return try await authenticator.identify(Credentials.from(request))
    }
}
