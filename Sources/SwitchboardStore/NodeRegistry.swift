import Synchronization
import SwitchboardCore

/// What one node reports about itself: the counts behind `GET /v1/channels` and `sys:stats`
/// (SPEC section 7: they count the whole cluster).
public struct NodeReport: Sendable, Equatable {
    public var node: String
    public var connections: [String: Int]
    public var subscriptions: Int
    public var published: UInt64
    public var delivered: UInt64
    /// Subscribers per channel on this node.
    public var channels: [String: Int]

    public init(node: String, connections: [String: Int], subscriptions: Int, published: UInt64, delivered: UInt64, channels: [String: Int]) {
        self.node = node
        self.connections = connections
        self.subscriptions = subscriptions
        self.published = published
        self.delivered = delivered
        self.channels = channels
    }
}

/// The nodes of a cluster: each reports itself every second; a node that stops reporting for
/// `node_timeout_seconds` is dead, and its presence members leave.
public protocol NodeRegistry: Sendable {
    /// This node's id, new at every start.
    var nodeID: String { get }
    /// Records this node's report (a heartbeat) and sweeps nodes that stopped reporting.
    func report(_ report: NodeReport) async throws
    /// The latest report of every live node, this one included, in node order.
    func reports() async throws -> [NodeReport]
}

/// A registry of one node.
public final class SingleNode: NodeRegistry {
    public let nodeID: String
    private let last: Mutex<NodeReport?>

    public init(nodeID: String) {
        self.nodeID = nodeID
        self.last = Mutex(nil)
    }

    public func report(_ report: NodeReport) async throws {
        last.withLock { $0 = report }
    }

    public func reports() async throws -> [NodeReport] {
        last.withLock { $0.map { [$0] } ?? [] }
    }
}

extension NodeReport {
    /// `{"channels","connections","delivered","node","published","subscriptions"}`.
    public var json: JSONValue {
        [
            "node": .string(node),
            "connections": .object(connections.mapValues { .int(Int64($0)) }),
            "subscriptions": .int(Int64(subscriptions)),
            "published": .int(Int64(truncatingIfNeeded: published)),
            "delivered": .int(Int64(truncatingIfNeeded: delivered)),
            "channels": .object(channels.mapValues { .int(Int64($0)) }),
        ]
    }

    public init?(json: JSONValue) {
        guard let node = json["node"]?.stringValue, let subscriptions = json["subscriptions"]?.intValue,
              let published = json["published"]?.intValue, let delivered = json["delivered"]?.intValue
        else { return nil }
        self.init(
            node: node,
            connections: (json["connections"]?.objectValue ?? [:]).compactMapValues { $0.intValue.map(Int.init) },
            subscriptions: Int(subscriptions),
            published: UInt64(truncatingIfNeeded: published),
            delivered: UInt64(truncatingIfNeeded: delivered),
            channels: (json["channels"]?.objectValue ?? [:]).compactMapValues { $0.intValue.map(Int.init) }
        )
    }
}

/// Node ids: random, short, and sorting by start time.
public enum NodeID {
    public static func make(nowMillis: Int64 = Timestamp.nowMilliseconds()) -> String {
        String(nowMillis, radix: 36) + "-" + Epoch.random()
    }
}
