import NIOCore
import NIOPosix

/// How to run `connections`.
public struct ConnectionsConfig: Sendable {
    public var count: Int
    /// Handshakes a second (0: no limit), at most `concurrency` in flight.
    public var rate: Int
    public var concurrency: Int
    /// Seconds to hold the connections idle before checking them.
    public var hold: Double
    /// A local server's process id, to read its memory before and after.
    public var serverPID: Int32?
    /// Seconds each connection has to answer the final ping.
    public var pingTimeout: Double

    public init(count: Int, rate: Int, concurrency: Int, hold: Double, serverPID: Int32?, pingTimeout: Double) {
        self.count = count
        self.rate = rate
        self.concurrency = concurrency
        self.hold = hold
        self.serverPID = serverPID
        self.pingTimeout = pingTimeout
    }
}

/// Opens many idle subscribed connections, holds them, then checks each still answers.
public enum ConnectionsScenario {
    public static func run(_ options: BenchOptions, _ config: ConnectionsConfig) async throws -> ConnectionsResult {
        let limit = SystemResources.raiseFileDescriptorLimit()
        if limit > 0, UInt64(config.count) + 64 > limit {
            writeStandardError("bench: warning: \(grouped(config.count)) connections need more open files than the limit, \(limit)\n")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: options.threads)
        do {
            let result = try await run(options, config, group: group)
            try await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func run(_ options: BenchOptions, _ config: ConnectionsConfig, group: MultiThreadedEventLoopGroup) async throws -> ConnectionsResult {
        let recorder = LatencyRecorder(group: group)
        let client = WebSocketClient(options: options, recorder: recorder, group: group)
        let rssBefore = config.serverPID.flatMap(SystemResources.residentKiB)
        let progress = Progress(enabled: !options.quiet, sample: recorder.snapshot) { now, before, seconds in
            let perSecond = Double(now.counters.open - (before?.counters.open ?? 0)) / seconds
            return "[connections] open \(grouped(now.counters.open))/\(grouped(config.count))  "
                + "+\(grouped(max(0, Int(perSecond))))/s  closed by server \(grouped(now.counters.disconnects.values.reduce(0, +)))"
        }

        let opened: OpenReport
        let live: Int
        let stats: StatsSnapshot
        let rssAfter: Int?
        do {
            opened = try await SubscriberOpener.open(
                count: config.count, rate: config.rate, concurrency: config.concurrency, client: client, on: group.next()
            )
            try await Task.sleep(for: .milliseconds(Int64(config.hold * 1000)))
            rssAfter = config.serverPID.flatMap(SystemResources.residentKiB)
            let timeout = TimeAmount.milliseconds(Int64(config.pingTimeout * 1000))
            let answers = try await EventLoopFuture.whenAllComplete(opened.subscribers.map { $0.ping(timeout: timeout) }, on: group.next()).get()
            live = answers.count { if case .success = $0 { true } else { false } }
            stats = try await recorder.snapshot()
            await progress.stop()
        } catch {
            await progress.stop()
            throw error
        }
        try await EventLoopFuture.andAllComplete(opened.subscribers.map { $0.close() }, on: group.next()).get()

        var perConnection: Double?
        if let rssBefore, let rssAfter, !opened.subscribers.isEmpty {
            perConnection = rounded(Double(rssAfter - rssBefore) / Double(opened.subscribers.count), places: 2)
        }
        return ConnectionsResult(
            url: options.webSocketURLs,
            channel: options.channel,
            threads: options.threads,
            count: config.count,
            rate: config.rate,
            hold: config.hold,
            opened: opened.subscribers.count,
            failed: opened.failures.values.reduce(0, +),
            connectErrors: nonEmpty(opened.failures),
            handshakesPerSec: rounded(opened.handshakesPerSecond, places: 1),
            live: live,
            disconnects: stats.counters.disconnects.values.reduce(0, +),
            closeCodes: nonEmpty(stats.counters.disconnects),
            serverRssBeforeKib: rssBefore,
            serverRssAfterKib: rssAfter,
            rssPerConnKib: perConnection
        )
    }
}
