import Foundation

/// Which browser origins may open a WebSocket or SSE stream and call the REST API (CORS).
///
/// A request without `Origin` is not from a browser and is allowed. With `allowed_origins`
/// set, the origin must be on it (`*` allows any). Without it, development mode allows any
/// origin and otherwise only the server's own origin is allowed, which is what stops
/// Cross-Site WebSocket Hijacking.
public struct OriginPolicy: Sendable {
    let allowed: Set<String>
    let allowAny: Bool
    let developmentMode: Bool

    public init(allowedOrigins: [String], developmentMode: Bool) {
        allowed = Set(allowedOrigins.map(Self.normalize))
        allowAny = allowedOrigins.contains("*")
        self.developmentMode = developmentMode
    }

    public func allows(origin: String?, host: String?) -> Bool {
        guard let origin, !origin.isEmpty else { return true }
        // Browsers send http(s) origins (or "null"); anything else comes from a program,
        // which could send any Origin it liked, so it is treated like one without.
        let lower = origin.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://") || lower == "null" else { return true }
        if allowAny { return true }
        if !allowed.isEmpty { return allowed.contains(Self.normalize(origin)) }
        if developmentMode { return true }
        // Same origin: the Origin's host:port is the Host the request was sent to.
        guard let host, let url = URL(string: origin), let originHost = url.host else { return false }
        let originAuthority = url.port.map { "\(originHost):\($0)" } ?? originHost
        return originAuthority.lowercased() == host.lowercased()
    }

    static func normalize(_ origin: String) -> String {
        var o = origin.lowercased()
        while o.hasSuffix("/") { o.removeLast() }
        return o
    }
}
