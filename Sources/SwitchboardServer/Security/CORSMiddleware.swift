import Hummingbird
import SwitchboardCore

/// CORS for the REST API from the same origin list as the WebSocket handshake: preflights
/// from allowed origins get 204, others 403; answers to allowed origins carry
/// `Access-Control-Allow-Origin`.
struct CORSMiddleware<Context: RequestContext>: RouterMiddleware {
    let origins: OriginPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        let allowed = origins.allows(origin: origin, host: request.head.authority)
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            guard allowed else {
                return Problem.response(ProtocolError.forbidden("origin \(origin) is not allowed"), path: request.uri.path)
            }
            var headers = HTTPFields()
            headers[.accessControlAllowOrigin] = origin
            headers[.accessControlAllowMethods] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
            headers[.accessControlAllowHeaders] = "Authorization, Content-Type, If-Match, If-None-Match, X-API-Key, Last-Event-ID"
            headers[.accessControlMaxAge] = "600"
            headers[.vary] = "Origin"
            return Response(status: .noContent, headers: headers)
        }
        var response = try await next(request, context)
        if allowed {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.accessControlExposeHeaders] = "ETag, Location"
            response.headers[.vary] = "Origin"
        }
        return response
    }
}
