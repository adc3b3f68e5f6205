import Histogram
import NIOCore

/// Latencies are recorded in microseconds, up to ten minutes, to three significant digits.
func makeLatencyHistogram() -> Histogram<UInt64> {
    Histogram(lowestDiscernibleValue: 1, highestTrackableValue: latencyCeilingMicros, numberOfSignificantValueDigits: .three)
}

private let latencyCeilingMicros: UInt64 = 600_000_000

/// What the subscribers of one event loop have seen. Only that loop touches it: its
/// connections' handlers directly, everyone else through tasks submitted to the loop, so the
/// hot path takes no lock.
final class LoopStats {
    /// Send times (wall-clock ns) whose messages are measured; empty until publishing starts.
    var window: Range<Int64> = 0..<0
    var histogram = makeLatencyHistogram()
    var counters = StatsCounters()

    /// A message push with a new offset, sent at `sentAt` (nil: not one of ours).
    @inline(__always)
    func delivered(sentAt: Int64?, now: Int64) {
        counters.received += 1
        guard let sentAt, window.contains(sentAt) else { return }
        counters.measured += 1
        histogram.record(min(UInt64(max(0, now - sentAt) / 1000), latencyCeilingMicros))
    }
}

struct StatsCounters: Sendable {
    /// Message pushes with a new offset, all of them and those sent in the window.
    var received = 0
    var measured = 0
    /// Offsets skipped (missing messages), and pushes whose offset was not above the last.
    var gaps = 0
    var reorders = 0
    /// Connections subscribed and still open.
    var open = 0
    /// Subscribed connections that closed before the end, by close code ("none": no close frame).
    var disconnects: [String: Int] = [:]
    /// Text frames that were neither a message, the welcome nor an awaited reply.
    var unexpectedFrames = 0

    mutating func add(_ other: StatsCounters) {
        received += other.received
        measured += other.measured
        gaps += other.gaps
        reorders += other.reorders
        open += other.open
        disconnects.merge(other.disconnects, uniquingKeysWith: +)
        unexpectedFrames += other.unexpectedFrames
    }
}

/// All loops' stats added up at one moment.
struct StatsSnapshot: Sendable {
    var counters = StatsCounters()
    var histogram = makeLatencyHistogram()
}

/// One `LoopStats` per event loop of the group; merges them on demand.
final class LatencyRecorder: Sendable {
    private let loops: [ObjectIdentifier: NIOLoopBoundBox<LoopStats>]
    private let anyLoop: any EventLoop

    init(group: some EventLoopGroup) {
        var loops: [ObjectIdentifier: NIOLoopBoundBox<LoopStats>] = [:]
        for loop in group.makeIterator() {
            loops[ObjectIdentifier(loop)] = .makeBoxSendingValue(LoopStats(), eventLoop: loop)
        }
        self.loops = loops
        self.anyLoop = group.next()
    }

    /// The stats of `loop`; call on that loop.
    func stats(on loop: any EventLoop) -> LoopStats {
        loops[ObjectIdentifier(loop)]!.value
    }

    /// Starts measuring messages sent within `window` (wall-clock ns).
    func setWindow(_ window: Range<Int64>) async throws {
        try await EventLoopFuture.andAllSucceed(
            loops.values.map { bound in bound.eventLoop.submit { bound.value.window = window } },
            on: anyLoop
        ).get()
    }

    func snapshot() async throws -> StatsSnapshot {
        let parts = try await EventLoopFuture.whenAllSucceed(
            loops.values.map { bound in
                bound.eventLoop.submit { StatsSnapshot(counters: bound.value.counters, histogram: bound.value.histogram) }
            },
            on: anyLoop
        ).get()
        var total = StatsSnapshot()
        for part in parts {
            total.counters.add(part.counters)
            total.histogram.add(part.histogram)
        }
        return total
    }
}
