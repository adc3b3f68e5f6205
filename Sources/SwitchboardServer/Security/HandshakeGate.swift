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
        try check(request, ip: ip)
        return try await authenticator.identify(request.credential)
    }

    /// The origin (403), then, for a new connection from `ip`, the per-IP connections and
    /// handshake rate (429), which a passed check counts. `ip` is nil for the upgrade of an
    /// Engine.IO polling session, counted when it opened. The refusal, or nil.
    func screen(origin: String?, host: String?, newConnectionFrom ip: String?) -> ProtocolError? {
        guard origins.allows(origin: origin, host: host) else {
            return ProtocolError.forbidden("origin \(origin ?? "") is not allowed to connect")
        }
        return ip.flatMap(limiter.admitHandshake)
    }

    private func check(_ request: HandshakeRequest, ip: String) throws(ProtocolError) {
        if let refusal = screen(origin: request.origin, host: request.host, newConnectionFrom: ip) { throw refusal }
    }

    /// A WebSocket upgrade: `/v1/ws`, or Engine.IO at `/socket.io/` (whose credentials come
    /// with its CONNECT, and whose upgrade of a polling session was counted when it opened).
    /// Decided at once unless a token needs verifying.
    func admitWebSocket(_ request: HandshakeRequest, ip: String) -> AdmissionCheck {
        switch request.path {
        case "/v1/ws":
            do {
                try check(request, ip: ip)
            } catch {
                return .decided(.failure(.problem(error, path: request.path)))
            }
            switch authenticator.identifyAtOnce(request.credential) {
            case .identified(let identity):
                return .decided(.success(Admission(kind: .switchboard(identity), ip: ip)))
            case .token(let token):
                let authenticator = self.authenticator
                return .pending {
                    do throws(ProtocolError) {
                        return .success(Admission(kind: .switchboard(try await authenticator.verify(token: token)), ip: ip))
                    } catch {
                        return .failure(.problem(error, path: request.path))
                    }
                }
            }
        case "/socket.io/", "/socket.io":
            do {
                let handshake = try SocketIOHandshake.parse(
                    target: request.target, credential: request.credential, ip: ip, isUpgrade: true, isGet: true
                )
                if let refusal = screen(origin: request.origin, host: request.host, newConnectionFrom: handshake.sid == nil ? ip : nil) {
                    return .decided(.failure(.engineIO(.refused(refusal))))
                }
                return .decided(.success(Admission(kind: .socketIO(handshake), ip: ip)))
            } catch {
                return .decided(.failure(.engineIO(error)))
            }
        default:
            return .decided(.failure(.problem(.notFound("no WebSocket endpoint at \(request.path); use /v1/ws or /socket.io/"), path: request.path)))
        }
    }
}

/// A handshake's verdict: known at once, or after a token is verified.
enum AdmissionCheck: Sendable {
    case decided(Result<Admission, HandshakeRefusal>)
    case pending(@Sendable () async -> Result<Admission, HandshakeRefusal>)

    /// The same check with `then` applied to its verdict.
    func map(_ then: @escaping @Sendable (Result<Admission, HandshakeRefusal>) -> Result<Admission, HandshakeRefusal>) -> AdmissionCheck {
        switch self {
        case .decided(let verdict): .decided(then(verdict))
        case .pending(let verdict): .pending { then(await verdict()) }
        }
    }
}
