/// Every permission decision a client can meet, whatever carries its request (REST,
/// `/v1/ws`, SSE, long-polling, Socket.IO), as the error it gets (SPEC section 5): one
/// place for the rules (`Identity`) and one wording for each refusal.
public struct Access: Sendable {
    public let identity: Identity
    public let namespaces: Namespaces

    public init(identity: Identity, namespaces: Namespaces) {
        self.identity = identity
        self.namespaces = namespaces
    }

    public enum ChannelAction: Sendable {
        /// Subscribe, and get join and leave pushes when `presence` is asked.
        case subscribe(presence: Bool)
        /// Read history (REST, the `history` command, a long-poll).
        case history
        /// List the members.
        case presence
        /// Publish from a client connection (`client_publish` and the token's `publish` claim).
        case publish
        /// Publish over REST (the API key, or the token's `publish` claim).
        case publishOverREST
    }

    /// Nil when allowed, else the refusal: `unauthorized` without credentials, `forbidden` with.
    public func refusal(_ action: ChannelAction, channel: String) -> ProtocolError? {
        let policy = namespaces.policy(forChannel: channel)
        switch action {
        case .subscribe(let presence):
            guard identity.mayRead(channel: channel, policy: policy) else { return identity.refusal("subscribing to \"\(channel)\"") }
            if presence && !policy.presence { return Self.presenceOff(channel) }
        case .history:
            guard identity.mayRead(channel: channel, policy: policy) else { return identity.refusal("reading \"\(channel)\"") }
        case .presence:
            guard identity.mayRead(channel: channel, policy: policy) else { return identity.refusal("presence of \"\(channel)\"") }
            guard policy.presence else { return Self.presenceOff(channel) }
        case .publish:
            if Self.isReserved(channel) { return Self.reserved(channel) }
            guard identity.mayPublishFromClient(channel: channel, policy: policy) else {
                // Anonymous in an anonymous namespace: credentials are not the problem.
                if identity.role == .anonymous, policy.anonymous, !policy.clientPublish {
                    return .forbidden("clients may not publish on \"\(channel)\": its namespace has client_publish off")
                }
                return identity.refusal("publishing on \"\(channel)\"")
            }
        case .publishOverREST:
            if Self.isReserved(channel) { return Self.reserved(channel) }
            guard identity.mayPublishOverREST(channel: channel) else { return identity.refusal("publishing on \"\(channel)\"") }
        }
        return nil
    }

    public func check(_ action: ChannelAction, channel: String) throws(ProtocolError) {
        if let refusal = refusal(action, channel: channel) { throw refusal }
    }

    public func checkRead(collection: String) throws(ProtocolError) {
        let policy = namespaces.policy(forChannel: Names.collectionChannel(collection))
        guard identity.mayReadCollection(collection, policy: policy) else {
            throw identity.refusal("reading collection \"\(collection)\"")
        }
    }

    public func checkWrite(collection: String) throws(ProtocolError) {
        guard identity.mayWriteCollection(collection) else { throw identity.refusal("writing collection \"\(collection)\"") }
    }

    /// Server-wide views: `GET /v1/channels`, `/metrics`, the dashboard.
    public func checkAdminister(_ what: String) throws(ProtocolError) {
        guard identity.mayAdminister else { throw identity.refusal(what) }
    }

    /// A channel name from a client, or the error that says what a name may be.
    public static func channel(_ name: String) throws(ProtocolError) -> String {
        try Names.channel(name)
    }

    /// Channels that only the server itself publishes on.
    public static func isReserved(_ channel: String) -> Bool {
        let namespace = Names.namespace(of: channel)
        return namespace == Names.collectionNamespace || namespace == Names.systemNamespace
    }

    private static func reserved(_ channel: String) -> ProtocolError {
        .forbidden("\"\(channel)\" is reserved: only the server publishes on collection: and sys: channels")
    }

    private static func presenceOff(_ channel: String) -> ProtocolError {
        .forbidden("presence is not enabled for the namespace of \"\(channel)\"")
    }
}
