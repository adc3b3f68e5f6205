import Foundation

/// When a JWT expires, read from its `exp` claim without verifying it (the server does
/// that): the client refreshes a little before. Nil for anything that is not a JWT with
/// a numeric `exp` (an API key, an opaque token).
enum TokenExpiry {
    static func expiry(of token: String) -> Date? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let claims = try? JSONValue.parse(Array(data)),
              case let exp? = claims["exp"], let seconds = exp.intValue ?? (exp.doubleValue.map { Int64($0) })
        else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }

    /// When to refresh a token that expires at `expiry`, seen at `now`: a tenth of its
    /// remaining life before, at least 5 s before (or at once if that has passed).
    static func refreshTime(expiry: Date, now: Date = Date()) -> Date {
        let remaining = expiry.timeIntervalSince(now)
        return now.addingTimeInterval(max(0, remaining - max(5, remaining / 10)))
    }
}
