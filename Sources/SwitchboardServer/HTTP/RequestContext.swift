import HTTPTypes
import Hummingbird
import NIOCore
import SwitchboardCore

/// The request context of every route: who is asking (set by `AuthMiddleware`) and from
/// where (the TCP peer, or behind a trusted proxy the address it forwarded).
public struct SwitchboardRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Identity = .anonymous
    public let remoteAddress: SocketAddress?
    public var clientIP: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        clientIP = ClientAddress.ip(of: remoteAddress)
    }
}

/// Sets `context.clientIP` and `context.identity` from the request; a bad credential is 401 at once.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = SwitchboardRequestContext
    let authenticator: Authenticator
    let addresses: ClientAddress

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.clientIP = addresses.resolve(
            peer: context.clientIP,
            forwardedFor: request.headers[values: .xForwardedFor],
            forwarded: request.headers[values: .forwarded]
        )
        // Socket.IO's credentials are read at its CONNECT, where a bad one is a CONNECT_ERROR.
        let path = request.uri.path
        if path != "/socket.io/" && path != "/socket.io" {
            context.identity = try await authenticator.identify(Credentials.from(request))
        }
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
    static let forwarded = Self("Forwarded")!
}
