import Hummingbird
import SwitchboardCore

/// The checks every long-lived connection passes before it is accepted (WebSocket, SSE,
/// Socket.IO): the Origin (Cross-Site WebSocket Hijacking), per-IP limits, and the credential.
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

    /// A WebSocket upgrade: `/v1/ws`, or Engine.IO at `/socket.io/` (whose credentials come
    /// with its CONNECT, and whose upgrade of a polling session was counted when it opened).
    func admitWebSocket(_ request: HandshakeRequest, ip: String) async -> Result<Admission, HandshakeRefusal> {
        switch request.path {
        case "/v1/ws":
            do {
                return .success(Admission(kind: .switchboard(try await admit(request, ip: ip)), ip: ip))
            } catch {
                return .failure(.problem(error, path: request.path))
            }
        case "/socket.io/", "/socket.io":
            do {
                let handshake = try SocketIOHandshake.parse(
                    target: request.target, authorization: request.authorization, apiKey: request.apiKey, ip: ip,
                    isUpgrade: true, isGet: true
                )
                guard origins.allows(origin: request.origin, host: request.host) else {
                    return .failure(.engineIO(.forbidden("origin \(request.origin ?? "") is not allowed to connect")))
                }
                if handshake.sid == nil, let refusal = limiter.admitHandshake(ip: ip) {
                    return .failure(.engineIO(.forbidden(refusal.message, status: 429)))
                }
                return .success(Admission(kind: .socketIO(handshake), ip: ip))
            } catch {
                return .failure(.engineIO(error))
            }
        default:
            return .failure(.problem(.notFound("no WebSocket endpoint at \(request.path); use /v1/ws or /socket.io/"), path: request.path))
        }
    }
}
