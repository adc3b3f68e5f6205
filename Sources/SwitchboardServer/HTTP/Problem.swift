import Hummingbird
import Logging
import SwitchboardCore

/// RFC 9457 problem documents for every error a route throws, including Hummingbird's own
/// (no route, body too large), so clients always get `application/problem+json`.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as ProtocolError {
            return Problem.response(error, path: request.uri.path)
        } catch let error as HTTPError {
            var problem = Problem.protocolError(from: error)
            if error.status == .notFound && error.body == nil {
                problem.message = "no such resource: \(request.method) \(request.uri.path)"
            }
            return Problem.response(problem, path: request.uri.path, headers: error.headers)
        } catch {
            context.logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return Problem.response(ProtocolError(.internalError, "the server failed to answer this request"), path: request.uri.path)
        }
    }
}

enum Problem {
    static func response(_ error: ProtocolError, path: String, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/problem+json"
        return Response(
            status: status(error),
            headers: headers,
            body: .init(byteBuffer: ByteBuffer(string: document(error, path: path).serialized))
        )
    }

    static func status(_ error: ProtocolError) -> HTTPResponse.Status {
        HTTPResponse.Status(code: error.code.httpStatus, reasonPhrase: title(error.code.httpStatus))
    }

    static func document(_ error: ProtocolError, path: String) -> JSONValue {
        [
            "type": .string("https://switchboard.dev/problems/\(error.code.rawValue)"),
            "title": .string(title(error.code.httpStatus)),
            "status": .int(Int64(error.code.httpStatus)),
            "detail": .string(error.message),
            "code": .string(error.code.rawValue),
            "instance": .string(path),
        ]
    }

    static func title(_ code: Int) -> String {
        switch code {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 426: "Upgrade Required"
        case 429: "Too Many Requests"
        case 503: "Service Unavailable"
        default: "Internal Server Error"
        }
    }

    static func protocolError(from error: HTTPError) -> ProtocolError {
        let code: ProtocolError.Code
        switch error.status.code {
        case 400: code = .badRequest
        case 401: code = .unauthorized
        case 403: code = .forbidden
        case 404: code = .notFound
        case 405: code = .methodNotAllowed
        case 409: code = .conflict
        case 412: code = .preconditionFailed
        case 413: code = .tooLarge
        case 415: code = .unsupportedMediaType
        case 429: code = .rateLimited
        case 503: code = .unavailable
        default: code = error.status.code >= 500 ? .internalError : .badRequest
        }
        let message: String
        switch error.status.code {
        case 404: message = error.body ?? "no such resource"
        case 413: message = "request body is too large"
        default: message = error.body ?? error.status.reasonPhrase
        }
        return ProtocolError(code, message)
    }
}
