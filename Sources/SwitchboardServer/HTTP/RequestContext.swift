import Hummingbird
import HummingbirdWebSocket
import NIOCore
import Synchronization
import SwitchboardCore

/// The request context of every route: who is asking (set by `AuthMiddleware`), from where,
/// and, for a WebSocket handshake, the identity the upgraded connection starts with.
public struct SwitchboardRequestContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    public var identity: Identity = .anonymous
    public let remoteAddress: SocketAddress?
    let handshake: HandshakeResult

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        remoteAddress = source.channel.remoteAddress
        handshake = HandshakeResult()
    }

    var clientIP: String { ClientLimiter.ip(of: remoteAddress) }
}

/// Carries the handshake's identity from `shouldUpgrade` to the upgraded connection.
final class HandshakeResult: Sendable {
    private let value = Mutex<Identity?>(nil)
    var identity: Identity? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// Sets `context.identity` from the request's credential; a bad one is 401 at once.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = SwitchboardRequestContext
    let authenticator: Authenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.identity = try await authenticator.identify(Credentials.from(request))
        return try await next(request, context)
    }
}
