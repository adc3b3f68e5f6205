import Foundation
import HTTPTypes
import Hummingbird

/// Where a request carries its credential: `Authorization: Bearer T`, `X-API-Key: K`, or `?token=T`.
enum Credentials {
    static func from(_ request: Request) -> String? {
        if let authorization = request.headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return String(parts[1]).trimmingCharacters(in: .whitespaces)
            }
        }
        if let name = HTTPField.Name("X-API-Key"), let key = request.headers[name] {
            return key
        }
        if let token = request.uri.queryParameters["token"] {
            return String(token)
        }
        return nil
    }

    /// The `token` query parameter of a raw request target, percent-decoded.
    static func queryToken(in target: String) -> String? {
        guard let query = target.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == "token" {
                return String(parts[1]).removingPercentEncoding ?? String(parts[1])
            }
        }
        return nil
    }
}
