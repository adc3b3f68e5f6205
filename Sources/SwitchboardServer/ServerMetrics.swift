import Hummingbird
import Prometheus
import Synchronization
import SwitchboardCore
import SwitchboardStore

/// The server's Prometheus metrics, served at `/metrics` (docs/OPERATIONS.md says what each means).
///
/// Counts the hub keeps itself (published, delivered, subscriptions) are read when scraped,
/// so the hot path pays nothing for them.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let published: Counter
    private let delivered: Counter
    private let subscriptions: Gauge
    let slowConsumerCloses: Counter
    let rateLimitedCommands: Counter
    let storeLatency: DurationHistogram
    let gapFills: Counter
    let lostMessages: Counter
    let storeUnavailable: Counter
    private let lastCounters = Mutex<Node.Counters>(.init(published: 0, delivered: 0))
    /// Open connections by transport, readable for `sys:stats`.
    private let openConnections = Mutex<[String: Int]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        published = registry.makeCounter(name: "switchboard_messages_published_total", help: "Messages committed on channels, change events included.")
        delivered = registry.makeCounter(name: "switchboard_messages_delivered_total", help: "Messages handed to subscribers (one per subscriber).")
        subscriptions = registry.makeGauge(name: "switchboard_subscriptions", help: "Channel subscriptions on this node, all transports.")
        slowConsumerCloses = registry.makeCounter(name: "switchboard_slow_consumer_closes_total", help: "Connections closed with 4100 because their outbound queue was full.")
        rateLimitedCommands = registry.makeCounter(name: "switchboard_rate_limited_commands_total", help: "WebSocket commands refused by the rate limit.")
        storeLatency = registry.makeDurationHistogram(
            name: "switchboard_store_duration_seconds",
            buckets: [.microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
                      .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .seconds(1)],
            help: "Time of store operations (publish, record write, history read)."
        )
        gapFills = registry.makeCounter(
            name: "switchboard_gap_fills_total",
            help: "Reads of messages that reached this node out of order or without their notification (cluster)."
        )
        lostMessages = registry.makeCounter(
            name: "switchboard_lost_messages_total",
            help: "Messages gone from the store before this node could deliver them; their subscribers resumed."
        )
        storeUnavailable = registry.makeCounter(
            name: "switchboard_store_unavailable_total",
            help: "Store operations answered 503 because the database was not reachable."
        )
        for transport in ["websocket", "sse", "socketio"] { connections(transport).set(Int64(0)) }
    }

    private func connections(_ transport: String) -> Gauge {
        registry.makeGauge(name: "switchboard_connections", labels: [("transport", transport)], help: "Open connections by transport.")
    }

    func connectionOpened(transport: String) {
        connections(transport).increment()
        openConnections.withLock { $0[transport, default: 0] += 1 }
    }

    func connectionClosed(transport: String) {
        connections(transport).decrement()
        openConnections.withLock { $0[transport, default: 0] -= 1 }
    }

    /// Open connections now, by transport.
    public var connectionCounts: [String: Int] { openConnections.withLock { $0 } }

    func httpRequest(method: String, route: String, status: Int) {
        registry.makeCounter(
            name: "switchboard_http_requests_total",
            labels: [("method", method), ("route", route), ("status", String(status))],
            help: "HTTP requests by route and status."
        ).increment()
    }

    /// Times a store operation; a database out of reach becomes `unavailable` (503, temporary).
    func timeStore<T>(_ operation: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        defer { storeLatency.record(ContinuousClock.now - start) }
        do {
            return try await operation()
        } catch let error as StoreUnavailable {
            storeUnavailable.increment()
            throw ProtocolError(.unavailable, "\(error.description); try again")
        }
    }

    /// The exposition text, with the node's counts brought up to date.
    func render(node: Node) -> String {
        let now = node.counters
        let hub = node.hub
        let previous = lastCounters.withLock { last in
            let p = last
            last = now
            return p
        }
        published.increment(by: Int64(now.published &- previous.published))
        delivered.increment(by: Int64(now.delivered &- previous.delivered))
        subscriptions.set(Int64(hub.subscriptionCount))
        return registry.emitToString()
    }
}

/// Counts every HTTP request by method, route template and status.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = SwitchboardRequestContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response = try await next(request, context)
        metrics.httpRequest(method: request.method.rawValue, route: context.endpointPath ?? "unmatched", status: response.status.code)
        return response
    }
}
