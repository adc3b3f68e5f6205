import Hummingbird
import NIOCore
import SwitchboardCore

/// The request context of every route: who is asking (set by `AuthMiddleware`) and from where.
public struct SwitchboardRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Identity = .anonymous
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    var clientIP: String { ClientLimiter.ip(of: remoteAddress) }
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
