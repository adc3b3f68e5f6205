import Foundation
import Histogram

/// A scenario's outcome: a few lines for people and one JSON line for machines.
public protocol BenchResult: Encodable, Sendable {
    /// Printed before the JSON line unless `--json`.
    var summary: [String] { get }
}

extension BenchResult {
    /// One line, keys sorted and in snake_case, absent optionals left out.
    public func jsonLine() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// `fanout` and `latency`: REST publishes fanned out to WebSocket subscribers.
public struct FanoutResult: BenchResult {
    public var scenario: String
    public var url: String
    public var channel: String
    public var threads: Int
    public var subscribers: Int
    public var connected: Int
    public var connectFailed: Int
    public var connectErrors: [String: Int]?
    public var handshakesPerSec: Double
    public var rate: Double
    public var size: Int
    public var duration: Double
    public var warmup: Double
    public var publishers: Int
    /// Publishes answered 201 whose send time is in the measured window.
    public var published: Int
    public var publishRate: Double
    public var publishErrors: Int
    public var publishError: String?
    public var publishP50Ms: Double
    public var publishP99Ms: Double
    /// published × connected, and what arrived of it (within the grace period).
    public var expected: Int
    public var delivered: Int
    public var deliveredPerSec: Double
    public var lost: Int
    public var gaps: Int
    public var reorders: Int
    public var disconnects: Int
    public var closeCodes: [String: Int]?
    public var unexpectedFrames: Int
    /// Publish (send time stamped in the message) to push received.
    public var p50Ms: Double
    public var p90Ms: Double
    public var p99Ms: Double
    public var p999Ms: Double
    public var maxMs: Double
    public var meanMs: Double

    public var summary: [String] {
        let connections = "\(scenario): \(grouped(connected)) of \(grouped(subscribers)) subscribers connected to \(url), channel \(channel)"
            + (connectFailed > 0 ? "; \(grouped(connectFailed)) failed: \(describe(connectErrors))" : "")
        let publishing = "published \(grouped(published)) in \(duration) s (\(oneDecimal(publishRate))/s of \(oneDecimal(rate))/s asked), "
            + "\(grouped(publishErrors)) errors\(publishError.map { " (first: \($0))" } ?? ""); REST p50 \(publishP50Ms) ms, p99 \(publishP99Ms) ms"
        let delivery = "delivered \(grouped(delivered)) of \(grouped(expected)) (\(grouped(Int(deliveredPerSec))) msg/s), lost \(grouped(lost)), "
            + "gaps \(gaps), reorders \(reorders), disconnects \(disconnects)" + (closeCodes.map { " (\(describe($0)))" } ?? "")
        let latency = "latency publish→push: p50 \(p50Ms) ms, p90 \(p90Ms) ms, p99 \(p99Ms) ms, p99.9 \(p999Ms) ms, max \(maxMs) ms"
        return scenario == "latency" ? [latency, connections, publishing, delivery] : [connections, publishing, delivery, latency]
    }
}

/// `connections`: many idle subscribed connections, held, then checked.
public struct ConnectionsResult: BenchResult {
    public var scenario = "connections"
    public var url: String
    public var channel: String
    public var threads: Int
    public var count: Int
    public var rate: Int
    public var hold: Double
    public var opened: Int
    public var failed: Int
    public var connectErrors: [String: Int]?
    public var handshakesPerSec: Double
    /// Connections that answered a `ping` command after the hold.
    public var live: Int
    public var disconnects: Int
    public var closeCodes: [String: Int]?
    public var serverRssBeforeKib: Int?
    public var serverRssAfterKib: Int?
    public var rssPerConnKib: Double?

    public var summary: [String] {
        var lines = [
            "connections: opened \(grouped(opened)) of \(grouped(count)) to \(url) at \(grouped(Int(handshakesPerSec))) handshakes/s"
                + (failed > 0 ? "; \(grouped(failed)) failed: \(describe(connectErrors))" : ""),
            "after \(hold) s: \(grouped(live)) live (answered a ping), \(grouped(disconnects)) closed by the server"
                + (closeCodes.map { " (\(describe($0)))" } ?? ""),
        ]
        if let serverRssBeforeKib, let serverRssAfterKib {
            lines.append("server RSS \(grouped(serverRssBeforeKib)) KiB → \(grouped(serverRssAfterKib)) KiB"
                + (rssPerConnKib.map { ", \(oneDecimal($0)) KiB per connection" } ?? ""))
        }
        return lines
    }
}
