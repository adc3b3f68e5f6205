import Foundation
import HTTPTypes
import Hummingbird

/// Where a request or handshake carries its credential (SPEC section 5), read in one place
/// for every transport: `Authorization: Bearer T`, `X-API-Key: K`, or `?token=T`.
enum Credentials {
    static func from(_ request: Request) -> String? {
        credential(
            authorization: request.headers[.authorization], apiKey: HTTPField.Name("X-API-Key").flatMap { request.headers[$0] },
            target: request.uri.string
        )
    }

    /// The credential of a request with these header values and request target, trimmed.
    static func credential(authorization: String?, apiKey: String?, target: String) -> String? {
        if let authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return nonEmpty(String(parts[1]))
            }
        }
        if let apiKey, let key = nonEmpty(apiKey) { return key }
        return queryToken(in: target).flatMap(nonEmpty)
    }

    private static func nonEmpty(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? nil : trimmed
    }

    /// The `token` query parameter of a request target, percent-decoded.
    static func queryToken(in target: String) -> String? {
        queryParameter("token", in: target)
    }

    /// A query parameter of a request target, percent-decoded (`+` is a space).
    static func queryParameter(_ name: String, in target: String) -> String? {
        guard let query = target.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == name {
                let value = parts[1].replacingOccurrences(of: "+", with: " ")
                return value.removingPercentEncoding ?? value
            }
        }
        return nil
    }
}
