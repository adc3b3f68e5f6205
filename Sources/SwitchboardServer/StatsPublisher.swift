import Foundation
import Logging
import ServiceLifecycle
import SwitchboardCore

/// Publishes the server's statistics on `sys:stats` once a second (SPEC section 1):
/// `{"connections","websocket","sse","subscriptions","messages_in","messages_out","time"}`,
/// where messages in and out are per second over the last second. Nothing is published while
/// nobody is subscribed.
struct StatsPublisher: Service {
    static let channel = "sys:stats"
    let broker: Broker
    let logger: Logger

    func run() async throws {
        var last = broker.hub.counters
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            } catch {
                return
            }
            let now = broker.hub.counters
            guard broker.hub.subscriberCount(channel: Self.channel) > 0 else {
                last = now
                continue
            }
            let connections = broker.metrics.connectionCounts
            let stats: JSONValue = [
                "connections": .int(Int64(connections.values.reduce(0, +))),
                "websocket": .int(Int64(connections["websocket"] ?? 0)),
                "sse": .int(Int64(connections["sse"] ?? 0)),
                "subscriptions": .int(Int64(broker.hub.subscriptionCount)),
                "messages_in": .int(Int64(now.published &- last.published)),
                "messages_out": .int(Int64(now.delivered &- last.delivered)),
                "time": .string(Timestamp.format(Date())),
            ]
            last = now
            do {
                _ = try await broker.publish(channel: Self.channel, data: stats)
                last = broker.hub.counters  // The stats message itself is not counted.
            } catch {
                logger.warning("could not publish sys:stats", metadata: ["error": "\(error)"])
            }
        }
    }
}
