/// An error a client can act on: the code and message of a WebSocket error reply, and the
/// status of a REST problem document.
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case badRequest = "bad_request"
        case unauthorized
        case forbidden
        case notFound = "not_found"
        case conflict
        case tooLarge = "too_large"
        case rateLimited = "rate_limited"
        case unavailable
        case internalError = "internal"
        case preconditionFailed = "precondition_failed"
        case unsupportedMediaType = "unsupported_media_type"
        case methodNotAllowed = "method_not_allowed"
        case upgradeRequired = "upgrade_required"

        /// The HTTP status of a problem document with this code.
        public var httpStatus: Int {
            switch self {
            case .badRequest: 400
            case .unauthorized: 401
            case .forbidden: 403
            case .notFound: 404
            case .methodNotAllowed: 405
            case .conflict: 409
            case .preconditionFailed: 412
            case .tooLarge: 413
            case .unsupportedMediaType: 415
            case .upgradeRequired: 426
            case .rateLimited: 429
            case .internalError: 500
            case .unavailable: 503
            }
        }

        public var temporary: Bool { self == .rateLimited || self == .unavailable }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public var json: JSONValue {
        ["code": .string(code.rawValue), "message": .string(message), "temporary": .bool(code.temporary)]
    }

    public static func badRequest(_ m: String) -> Self { .init(.badRequest, m) }
    public static func notFound(_ m: String) -> Self { .init(.notFound, m) }
    public static func forbidden(_ m: String) -> Self { .init(.forbidden, m) }
}
