import PostgresNIO
import SwitchboardCore
import SwitchboardStore

/// The nodes of the cluster: a row each, rewritten every second with the node's report. A
/// node whose row is older than `nodeTimeout` (by the database's clock) is dead: whichever
/// node notices first deletes it and its presence members, and announces their leaves.
public final class PostgresNodes: NodeRegistry {
    private let store: PostgresStore
    private let nodeTimeoutMillis: Int64

    public init(store: PostgresStore, nodeTimeout: Duration) {
        self.store = store
        self.nodeTimeoutMillis = Int64(nodeTimeout.components.seconds) * 1000
    }

    public var nodeID: String { store.nodeID }

    private static let now = "(extract(epoch from clock_timestamp()) * 1000)::bigint"

    public func report(_ report: NodeReport) async throws {
        let json = report.json.serialized
        let node = store.nodeID
        let timeout = nodeTimeoutMillis
        let gone = try await store.transaction { connection in
            try await connection.query("""
                INSERT INTO nodes (id, seen_at, report) VALUES (\(node), \(unescaped: Self.now), \(json))
                ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, report = excluded.report
                """, logger: self.store.logger)
            // Members of dead nodes, and of nodes that never reported, leave.
            return try await PostgresStore.rows(
                try await connection.query("""
                    WITH dead AS (DELETE FROM nodes WHERE seen_at < \(unescaped: Self.now) - \(timeout) RETURNING id)
                    DELETE FROM presence WHERE node IN (SELECT id FROM dead) OR node NOT IN (SELECT id FROM nodes)
                    RETURNING node, channel, member
                    """, logger: self.store.logger),
                as: (String, String, String).self
            )
        }
        for (node, channel, json) in gone {
            guard let member = (try? JSONValue.parse(json)).flatMap(Member.init(json:)) else { continue }
            store.notifier.send(Notification.line(for: PresenceChange(.leave, channel: channel, member: member), node: node))
        }
    }

    public func reports() async throws -> [NodeReport] {
        let timeout = nodeTimeoutMillis
        let rows = try await store.run {
            try await PostgresStore.rows(
                try await self.store.client.query("SELECT report FROM nodes WHERE seen_at >= \(unescaped: Self.now) - \(timeout) ORDER BY id"),
                as: String.self
            )
        }
        return rows.compactMap { (try? JSONValue.parse($0)).flatMap(NodeReport.init(json:)) }
    }
}
