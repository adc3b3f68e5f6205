/// Who is on the other end of a request or connection, and what they may do.
///
/// The rules (SPEC section 5), in one place for every transport (`Access` turns them into
/// the errors clients see):
/// - the API key may do everything;
/// - development mode (no key, no secret configured) may do everything;
/// - a JWT grants what its `channels` and `collections` claims say, plus what the
///   namespaces allow anonymous connections; its `publish` claim, when present, is all it
///   may publish to; without the claim it publishes where `client_publish` is on;
/// - an anonymous connection may read namespaces with `anonymous: true`, and publish where
///   `client_publish` is on as well.
public struct Identity: Sendable, Equatable {
    public enum Role: Sendable, Equatable {
        case apiKey
        case development
        case token(Grants)
        case anonymous
    }

    public var role: Role
    /// The token's `sub`.
    public var user: String?
    /// The token's `info` claim, shown in presence.
    public var info: JSONValue?
    /// When the token expires (milliseconds since 1970), if it does.
    public var expiresAtMillis: Int64?

    public init(role: Role, user: String? = nil, info: JSONValue? = nil, expiresAtMillis: Int64? = nil) {
        self.role = role
        self.user = user
        self.info = info
        self.expiresAtMillis = expiresAtMillis
    }

    public static let anonymous = Identity(role: .anonymous)
    public static let development = Identity(role: .development)
    public static let apiKey = Identity(role: .apiKey, user: "api-key")

    public var isAnonymous: Bool { role == .anonymous }
    private var isAllPowerful: Bool { role == .apiKey || role == .development }

    /// Subscribe to a channel or read its history.
    public func mayRead(channel: String, policy: NamespacePolicy) -> Bool {
        if isAllPowerful { return true }
        let namespace = Names.namespace(of: channel)
        if namespace == Names.systemNamespace {
            if case .token(let grants) = role { return Pattern.anyMatches(grants.channels, channel) }
            return false
        }
        if policy.anonymous { return true }
        guard case .token(let grants) = role else { return false }
        if Pattern.anyMatches(grants.channels, channel) { return true }
        if namespace == Names.collectionNamespace {
            return Pattern.anyMatches(grants.read, String(channel.dropFirst(namespace.count + 1)))
        }
        return false
    }

    /// Publish from a client connection (never on reserved namespaces; the caller checks that).
    public func mayPublishFromClient(channel: String, policy: NamespacePolicy) -> Bool {
        switch role {
        case .apiKey, .development: return true
        case .token(let grants): return grants.publish.map { Pattern.anyMatches($0, channel) } ?? policy.clientPublish
        case .anonymous: return policy.clientPublish && policy.anonymous
        }
    }

    /// Publish over REST.
    public func mayPublishOverREST(channel: String) -> Bool {
        if isAllPowerful { return true }
        if case .token(let grants) = role { return Pattern.anyMatches(grants.publish ?? [], channel) }
        return false
    }

    public func mayReadCollection(_ collection: String, policy: NamespacePolicy) -> Bool {
        if isAllPowerful || policy.anonymous { return true }
        if case .token(let grants) = role {
            return Pattern.anyMatches(grants.read, collection)
                || Pattern.anyMatches(grants.channels, Names.collectionChannel(collection))
        }
        return false
    }

    public func mayWriteCollection(_ collection: String) -> Bool {
        if isAllPowerful { return true }
        if case .token(let grants) = role { return Pattern.anyMatches(grants.write, collection) }
        return false
    }

    /// Server-wide views: `GET /v1/channels`, the admin dashboard.
    public var mayAdminister: Bool { isAllPowerful }

    /// The error for something this identity may not do: 401 without credentials, 403 with.
    public func refusal(_ what: String) -> ProtocolError {
        isAnonymous
            ? ProtocolError(.unauthorized, "\(what) needs credentials: an API key or a token that grants it")
            : ProtocolError(.forbidden, "\(what) is not granted to \(user.map { "\"\($0)\"" } ?? "this client")")
    }
}

/// The grant claims of a JWT.
public struct Grants: Sendable, Equatable {
    public var channels: [String]
    /// Where the holder may publish; nil when the token has no `publish` claim (then the
    /// namespaces' `client_publish` decides).
    public var publish: [String]?
    public var read: [String]
    public var write: [String]

    public init(channels: [String] = [], publish: [String]? = nil, read: [String] = [], write: [String] = []) {
        self.channels = channels
        self.publish = publish
        self.read = read
        self.write = write
    }
}
