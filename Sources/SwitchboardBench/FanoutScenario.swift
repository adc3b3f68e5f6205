import NIOCore
import NIOPosix

/// How to run `fanout` (and `latency`, the same at a low rate).
public struct FanoutConfig: Sendable {
    public var subscribers: Int
    /// Messages a second published over REST.
    public var rate: Double
    /// Bytes of each message's data.
    public var size: Int
    /// Seconds measured, after `warmup` seconds of publishing that are not.
    public var duration: Double
    public var warmup: Double
    /// Seconds to wait at the end for messages still on their way.
    public var grace: Double
    /// Keep-alive HTTP connections publishing.
    public var publishers: Int
    /// Handshakes a second (0: no limit) and at most this many in flight.
    public var connectRate: Int
    public var connectConcurrency: Int

    public init(
        subscribers: Int, rate: Double, size: Int, duration: Double, warmup: Double, grace: Double,
        publishers: Int, connectRate: Int, connectConcurrency: Int
    ) {
        self.subscribers = subscribers
        self.rate = rate
        self.size = size
        self.duration = duration
        self.warmup = warmup
        self.grace = grace
        self.publishers = publishers
        self.connectRate = connectRate
        self.connectConcurrency = connectConcurrency
    }
}

/// Subscribes N connections to one channel, publishes to it over REST at a steady rate, and
/// measures what every subscriber receives: throughput, loss, order and latency.
public enum FanoutScenario {
    public static func run(_ options: BenchOptions, _ config: FanoutConfig, scenario: String = "fanout") async throws -> FanoutResult {
        SystemResources.raiseFileDescriptorLimit()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
        do {
            let result = try await run(options, config, scenario: scenario, group: group)
            try await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func run(
        _ options: BenchOptions, _ config: FanoutConfig, scenario: String, group: MultiThreadedEventLoopGroup
    ) async throws -> FanoutResult {
        let recorder = LatencyRecorder(group: group)
        let client = WebSocketClient(options: options, recorder: recorder, group: group)
        let progress = Progress(enabled: !options.quiet, sample: recorder.snapshot) { now, before, seconds in
            let perSecond = Double(now.counters.received - (before?.counters.received ?? 0)) / seconds
            let p99 = now.histogram.totalCount > 0 ? "\(oneDecimal(milliseconds(now.histogram.valueAtPercentile(99)))) ms" : "-"
            return "[\(scenario)] conns \(grouped(now.counters.open))/\(grouped(config.subscribers))  "
                + "delivered \(grouped(Int(perSecond))) msg/s  p99 \(p99)  gaps \(grouped(now.counters.gaps))"
        }

        do {
            return try await measure(options, config, scenario: scenario, group: group, recorder: recorder, client: client, progress: progress)
        } catch {
            await progress.stop()
            throw error
        }
    }

    private static func measure(
        _ options: BenchOptions, _ config: FanoutConfig, scenario: String, group: MultiThreadedEventLoopGroup,
        recorder: LatencyRecorder, client: WebSocketClient, progress: Progress
    ) async throws -> FanoutResult {
        let opened = try await SubscriberOpener.open(
            count: config.subscribers, rate: config.connectRate, concurrency: config.connectConcurrency,
            client: client, on: group.next()
        )
        guard !opened.subscribers.isEmpty else {
            throw BenchError.nothingConnected(opened.failures.max { $0.value < $1.value }?.key ?? "none asked for")
        }

        let start = wallClockNanos() + Int64(config.warmup * 1e9)
        let window = start..<(start + Int64(config.duration * 1e9))
        try await recorder.setWindow(window)
        let published = try await RESTPublisher.run(
            options: options,
            plan: .init(rate: config.rate, size: config.size, connections: config.publishers, window: window,
                        seconds: config.warmup + config.duration),
            on: group.next()
        )

        // Messages still on their way: wait for them, up to the grace period.
        let expected = published.publishedInWindow * opened.subscribers.count
        let graceEnd = ContinuousClock.now + .milliseconds(Int64(config.grace * 1000))
        var stats = try await recorder.snapshot()
        while stats.counters.measured < expected, ContinuousClock.now < graceEnd {
            try await Task.sleep(for: .milliseconds(50))
            stats = try await recorder.snapshot()
        }
        await progress.stop()
        try await EventLoopFuture.andAllComplete(opened.subscribers.map { $0.close() }, on: group.next()).get()

        let latency = stats.histogram
        return FanoutResult(
            scenario: scenario,
            url: options.webSocketURLs,
            channel: options.channel,
            threads: options.threads,
            subscribers: config.subscribers,
            connected: opened.subscribers.count,
            connectFailed: opened.failures.values.reduce(0, +),
            connectErrors: nonEmpty(opened.failures),
            handshakesPerSec: rounded(opened.handshakesPerSecond, places: 1),
            rate: config.rate,
            size: config.size,
            duration: config.duration,
            warmup: config.warmup,
            publishers: config.publishers,
            published: published.publishedInWindow,
            publishRate: rounded(Double(published.publishedInWindow) / config.duration, places: 1),
            publishErrors: published.errors,
            publishError: published.firstError,
            publishP50Ms: milliseconds(published.roundTrips.valueAtPercentile(50)),
            publishP99Ms: milliseconds(published.roundTrips.valueAtPercentile(99)),
            expected: expected,
            delivered: stats.counters.measured,
            deliveredPerSec: rounded(Double(stats.counters.measured) / config.duration, places: 1),
            lost: max(0, expected - stats.counters.measured),
            gaps: stats.counters.gaps,
            reorders: stats.counters.reorders,
            disconnects: stats.counters.disconnects.values.reduce(0, +),
            closeCodes: nonEmpty(stats.counters.disconnects),
            unexpectedFrames: stats.counters.unexpectedFrames,
            p50Ms: milliseconds(latency.valueAtPercentile(50)),
            p90Ms: milliseconds(latency.valueAtPercentile(90)),
            p99Ms: milliseconds(latency.valueAtPercentile(99)),
            p999Ms: milliseconds(latency.valueAtPercentile(99.9)),
            maxMs: milliseconds(latency.maxRecorded),
            meanMs: rounded(latency.totalCount > 0 ? latency.mean / 1000 : 0)
        )
    }
}
