/// Per-namespace rules from the config file (SPEC sections 5 and 6).
public struct NamespacePolicy: Sendable, Equatable {
    /// Connections without credentials may subscribe (enforced once auth exists).
    public var anonymous: Bool
    /// Clients may publish over WebSocket.
    public var clientPublish: Bool
    /// Subscribers may ask for presence.
    public var presence: Bool
    /// Messages kept per channel; 0 keeps none (offsets still grow).
    public var historySize: Int
    /// Seconds a message is kept; 0 is no age limit.
    public var historyTTL: Int

    public init(anonymous: Bool = true, clientPublish: Bool = false, presence: Bool = false, historySize: Int = 0, historyTTL: Int = 0) {
        self.anonymous = anonymous
        self.clientPublish = clientPublish
        self.presence = presence
        self.historySize = historySize
        self.historyTTL = historyTTL
    }

    public var history: HistoryPolicy { HistoryPolicy(size: historySize, ttlSeconds: historyTTL) }
}

/// How much of a channel's history the store keeps.
public struct HistoryPolicy: Sendable, Equatable {
    public var size: Int
    public var ttlSeconds: Int

    public init(size: Int, ttlSeconds: Int) {
        self.size = size
        self.ttlSeconds = ttlSeconds
    }

    /// Messages older than this are treated as gone (milliseconds since 1970), or nil.
    public func cutoff(nowMillis: Int64) -> Int64? {
        ttlSeconds > 0 ? nowMillis - Int64(ttlSeconds) * 1000 : nil
    }
}

/// The namespace table with SPEC's defaults; unknown namespaces follow `""`.
public struct Namespaces: Sendable, Equatable {
    public var policies: [String: NamespacePolicy]

    public static let defaults = Namespaces(policies: [
        "": NamespacePolicy(anonymous: true, clientPublish: false, presence: false, historySize: 100, historyTTL: 3600),
        "chat": NamespacePolicy(anonymous: true, clientPublish: true, presence: true, historySize: 200),
        "prices": NamespacePolicy(anonymous: true, clientPublish: false, historySize: 1000),
        Names.collectionNamespace: NamespacePolicy(anonymous: true, historySize: 10000, historyTTL: 86400),
    ])

    public init(policies: [String: NamespacePolicy]) {
        var policies = policies
        // The default namespace and the change feeds always have a policy.
        if policies[""] == nil { policies[""] = Self.defaultPolicies[""] }
        if policies[Names.collectionNamespace] == nil {
            policies[Names.collectionNamespace] = Self.defaultPolicies[Names.collectionNamespace]
        }
        self.policies = policies
    }

    private static let defaultPolicies: [String: NamespacePolicy] = [
        "": NamespacePolicy(anonymous: true, historySize: 100, historyTTL: 3600),
        Names.collectionNamespace: NamespacePolicy(anonymous: true, historySize: 10000, historyTTL: 86400),
    ]

    public func policy(forChannel channel: String) -> NamespacePolicy {
        policies[Names.namespace(of: channel)] ?? policies[""]!
    }
}

/// Limits from SPEC section 5, all configurable.
public struct Limits: Sendable, Equatable {
    public var messageBytes = 65536
    public var bodyBytes = 65536
    public var subscriptions = 128
    public var commandsPerSecond = 100
    public var commandBurst = 200
    public var queueBytes = 1 << 20
    public var connectionsPerIP = 1000
    /// WebSocket and SSE handshakes a second from one IP (burst: twice as many).
    public var handshakesPerSecond = 100
    /// Seconds a client has to send a whole HTTP request (slowloris).
    public var requestTimeoutSeconds = 10

    public init() {}
}
