import Logging
import SwitchboardCore
import SwitchboardPostgres
import SwitchboardSQLite
import SwitchboardStore

/// What a node runs on, chosen by `--database` (SPEC sections 6 and 7): an SQLite file for
/// one node, with node-local presence; or PostgreSQL for a cluster, with shared presence and
/// a registry of the nodes.
public struct Backend: Sendable {
    public var store: any Store
    public var presence: any Presence
    public var registry: any NodeRegistry

    public init(store: any Store, presence: any Presence = LocalPresence(), registry: any NodeRegistry = SingleNode(nodeID: NodeID.make())) {
        self.store = store
        self.presence = presence
        self.registry = registry
    }

    /// Opens the database `configuration` names (and migrates its schema).
    public static func open(_ configuration: ServerConfiguration, logger: Logger) async throws -> Backend {
        switch try configuration.databaseLocation() {
        case .sqlite(let path):
            do {
                return Backend(store: try SQLiteStore(path: path))
            } catch {
                throw ConfigurationError("cannot open the SQLite database \(path): \(error)")
            }
        case .postgres(let url):
            let node = NodeID.make()
            let store = try await PostgresStore.open(url: url, nodeID: node, logger: logger)
            return Backend(
                store: store,
                presence: PostgresPresence(store: store),
                registry: PostgresNodes(store: store, nodeTimeout: .seconds(configuration.nodeTimeoutSeconds))
            )
        }
    }
}
