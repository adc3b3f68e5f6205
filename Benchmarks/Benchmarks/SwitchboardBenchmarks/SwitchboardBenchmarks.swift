import Benchmark
import NIOCore
import Synchronization
import SwitchboardCore

/// Hot paths of the server, so that regressions show up as numbers:
/// frame encoding, hub fan-out, command parsing and the SQLite history append.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    pushFrameBenchmarks()
    fanOutBenchmarks()
    commandParseBenchmarks()
    historyBenchmarks()
}

// MARK: - Fixtures

enum Fixture {
    static let channel = "chat:room-1"
    static let epoch = "e4c1a9f2"

    /// A JSON object of exactly 100 bytes, as `ChannelMessage.data` holds it (serialized once).
    static let data: String = {
        let head = #"{"text":""#
        let tail = #"","user":"u-42"}"#
        let text = head + String(repeating: "x", count: 100 - head.utf8.count - tail.utf8.count) + tail
        precondition(text.utf8.count == 100)
        return text
    }()
}

// MARK: - 1. Push frame encoding

func pushFrameBenchmarks() {
    // One message's JSON (`ChannelMessage.json`) plus its WebSocket frame (`PushFrame`), built once
    // per published message and shared by every subscriber.
    Benchmark(
        "PushFrame encode (100-byte data)",
        configuration: .init(scalingFactor: .kilo)
    ) { benchmark in
        for i in benchmark.scaledIterations {
            let message = ChannelMessage(channel: Fixture.channel, epoch: Fixture.epoch, offset: Int64(i) + 1, data: Fixture.data)
            blackHole(message.frame)
        }
    }
}

// MARK: - 2. Hub fan-out

/// The cheapest possible in-process subscriber: counts the frames it is given.
final class CountingSubscriber: Subscriber {
    let delivered = Atomic<Int>(0)

    func send(_ frame: ByteBuffer) {}

    func deliver(_ message: ChannelMessage, frame: PushFrame) {
        delivered.add(1, ordering: .relaxed)
    }
}

/// A hub with `count` live subscribers on one channel, and the next offset to publish.
final class FanOut: Sendable {
    let hub = Hub()
    let subscribers: [CountingSubscriber]
    private let lastOffset = Atomic<Int64>(0)

    init(subscribers count: Int) {
        subscribers = (0..<count).map { _ in CountingSubscriber() }
        for subscriber in subscribers {
            precondition(hub.beginSubscribe(subscriber, channel: Fixture.channel))
            precondition(hub.goLive(subscriber, channel: Fixture.channel, after: 0))
        }
        // Check that the subscribers are live (not holding messages in catch-up), so that the
        // benchmark measures delivery and not the pending queue.
        dispatchNext()
        for subscriber in subscribers {
            precondition(subscriber.delivered.load(ordering: .relaxed) == 1, "subscriber is not live")
        }
    }

    /// Dispatches one message at the channel's next offset.
    @inline(__always)
    func dispatchNext() {
        let offset = lastOffset.add(1, ordering: .relaxed).newValue
        hub.dispatch(ChannelMessage(channel: Fixture.channel, epoch: Fixture.epoch, offset: offset, data: Fixture.data))
    }
}

func fanOutBenchmarks() {
    // One `Hub.dispatch`: the push frame is built once, then handed to every subscriber under the
    // hub's lock. One iteration is one published message (N deliveries).
    for (count, label, scaling) in [(1_000, "1,000", BenchmarkScalingFactor.one), (10, "10", .kilo)] {
        Benchmark(
            "Hub fan-out to \(label) subscribers",
            configuration: .init(scalingFactor: scaling)
        ) { (benchmark: Benchmark, fanOut: FanOut) in
            for _ in benchmark.scaledIterations {
                fanOut.dispatchNext()
            }
        } setup: {
            FanOut(subscribers: count)
        }
    }
}

// MARK: - 3. Client command parsing

func commandParseBenchmarks() {
    // What the WebSocket session does with every text frame a client sends:
    // `ClientCommand.parse(Array(text.utf8))`.
    let text = #"{"id":7,"op":"publish","channel":"chat:a","data":{"text":"hi"}}"#
    Benchmark(
        "Client command parse",
        configuration: .init(scalingFactor: .kilo)
    ) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try ClientCommand.parse(Array(text.utf8)))
        }
    }
}
