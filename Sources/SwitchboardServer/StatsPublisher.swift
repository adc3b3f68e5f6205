import Foundation
import Logging
import ServiceLifecycle
import SwitchboardCore
import SwitchboardStore

/// Publishes the cluster's statistics on `sys:stats` once a second (SPEC sections 1 and 7):
/// `{"connections","websocket","sse","subscriptions","messages_in","messages_out","time"}`,
/// counted over every node, where messages in and out are per second over the last second.
/// One node publishes: the one with the lowest id (on a single node, itself). Nothing is
/// published while nobody is subscribed anywhere.
struct StatsPublisher: Service {
    static let channel = "sys:stats"
    let node: Node
    let logger: Logger

    func run() async throws {
        // Rates start from this node's counts now; another node's, from its first report seen.
        var last: [String: Node.Counters] = [node.nodeID: node.counters]
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            } catch {
                return
            }
            let reports = (try? await node.clusterReports()) ?? [node.report()]
            let previous = last
            last = Dictionary(uniqueKeysWithValues: reports.map { ($0.node, Node.Counters(published: $0.published, delivered: $0.delivered)) })
            guard reports.first?.node == node.nodeID, reports.contains(where: { ($0.channels[Self.channel] ?? 0) > 0 }) else { continue }
            var connections: [String: Int] = [:]
            var messagesIn: UInt64 = 0
            var messagesOut: UInt64 = 0
            for report in reports {
                connections.merge(report.connections, uniquingKeysWith: +)
                guard let before = previous[report.node] else { continue }
                messagesIn &+= report.published &- before.published
                messagesOut &+= report.delivered &- before.delivered
            }
            let stats: JSONValue = [
                "connections": .int(Int64(connections.values.reduce(0, +))),
                "websocket": .int(Int64(connections["websocket"] ?? 0)),
                "sse": .int(Int64(connections["sse"] ?? 0)),
                "subscriptions": .int(Int64(reports.reduce(0) { $0 + $1.subscriptions })),
                "messages_in": .int(Int64(messagesIn)),
                "messages_out": .int(Int64(messagesOut)),
                "time": .string(Timestamp.format(Date())),
            ]
            do {
                _ = try await node.publish(channel: Self.channel, data: stats)
                last[node.nodeID] = node.counters  // The stats message itself is not counted.
            } catch {
                logger.warning("could not publish sys:stats", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Every second: this node's report into the registry, which in a cluster is also its
/// heartbeat (a node silent for `node_timeout_seconds` is dead, and its members leave).
struct NodeReporter: Service {
    let node: Node
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await node.registry.report(node.report())
            } catch {
                logger.debug("node report failed", metadata: ["error": "\(error)"])
            }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            } catch {
                return
            }
        }
    }
}
