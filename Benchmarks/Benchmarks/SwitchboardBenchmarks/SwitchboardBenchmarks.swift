import Benchmark
import NIOCore
import Synchronization
import SwitchboardCore
import SwitchboardProtocol
@_spi(Benchmarks) import SwitchboardServer

/// Hot paths of the server, so that regressions show up as numbers: message encoding, hub
/// fan-out, command parsing, the SQLite history append, and the WebSocket wire (frame
/// headers and unmasking, permessage-deflate, the handshake's request head).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    encodingBenchmarks()
    fanOutBenchmarks()
    commandParseBenchmarks()
    historyBenchmarks()
    frameHeaderBenchmarks()
    deflateBenchmarks()
    requestHeadBenchmarks()
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

// MARK: - 1. Message encoding

func encodingBenchmarks() {
    // What the first `/v1/ws` subscriber of a delivery asks of the message's `MessageFrames`:
    // the message's JSON plus the WebSocket text frame around it, built once per published
    // message and shared by every later subscriber (and SSE and long-polling, which send the
    // JSON part).
    Benchmark(
        "Message encode /v1/ws (100-byte data)",
        configuration: .init(scalingFactor: .kilo)
    ) { benchmark in
        for i in benchmark.scaledIterations {
            let message = ChannelMessage(channel: Fixture.channel, epoch: Fixture.epoch, offset: Int64(i) + 1, data: Fixture.data)
            var frames = MessageFrames(message)
            blackHole(frames.webSocket())
        }
    }

    // The same for the first Socket.IO subscriber over WebSocket: `42["channel",data]` in a
    // WebSocket text frame, kept in the `.socketIOEvent` slot (as `SocketIOClient.deliver` does).
    Benchmark(
        "Message encode Socket.IO (100-byte data)",
        configuration: .init(scalingFactor: .kilo)
    ) { benchmark in
        for i in benchmark.scaledIterations {
            let message = ChannelMessage(channel: Fixture.channel, epoch: Fixture.epoch, offset: Int64(i) + 1, data: Fixture.data)
            var frames = MessageFrames(message)
            blackHole(frames.encoded(.socketIOEvent) { PushFrame(json: SocketIOClient.eventPacket($0)).wire })
        }
    }
}

// MARK: - 2. Hub fan-out

/// One event loop's outbox, reduced to counting: it gets one hand-over per delivery (the
/// frame and the subscribers of its loop), as `LoopOutbox` does.
final class CountingOutbox: Sendable {
    let frames = Atomic<Int>(0)
    let deliveries = Atomic<Int>(0)

    /// What `LoopOutbox.Fanout` is: one message's frame for the subscribers of this loop,
    /// gathered while the hub walks its subscribers, handed over once at the end.
    final class Fanout: DeliveryBatch {
        let outbox: CountingOutbox
        let frame: ByteBuffer
        var subscribers: [CountingSubscriber] = []

        init(outbox: CountingOutbox, frame: ByteBuffer) {
            self.outbox = outbox
            self.frame = frame
        }

        func commit() {
            outbox.frames.add(1, ordering: .relaxed)
            outbox.deliveries.add(subscribers.count, ordering: .relaxed)
        }
    }
}

/// An in-process subscriber that does what a `/v1/ws` connection does with a message (takes
/// the shared frame and joins its loop's batch) and no I/O.
final class CountingSubscriber: Subscriber {
    let outbox: CountingOutbox

    init(outbox: CountingOutbox) {
        self.outbox = outbox
    }

    func deliver(_ message: ChannelMessage, frames: inout MessageFrames) {
        let frame = frames.webSocket().wire
        frames.batch(outbox) { CountingOutbox.Fanout(outbox: outbox, frame: frame) }.subscribers.append(self)
    }

    func missed(channel: String) {}
}

/// A hub with `count` live subscribers on one channel, spread over two "event loops" (this
/// machine has two cores), and the next offset to publish.
final class FanOut: Sendable {
    let hub = Hub()
    let outboxes = [CountingOutbox(), CountingOutbox()]
    let subscribers: [CountingSubscriber]
    private let lastOffset = Atomic<Int64>(0)

    init(subscribers count: Int) {
        subscribers = (0..<count).map { [outboxes] in CountingSubscriber(outbox: outboxes[$0 % outboxes.count]) }
        for subscriber in subscribers {
            precondition(hub.beginSubscribe(subscriber, channel: Fixture.channel))
            precondition(hub.goLive(subscriber, channel: Fixture.channel, after: 0))
        }
        // Check that the subscribers are live (not holding messages in catch-up), so that the
        // benchmark measures delivery and not the pending queue.
        dispatchNext()
        let delivered = outboxes.reduce(0) { $0 + $1.deliveries.load(ordering: .relaxed) }
        let handedOver = outboxes.reduce(0) { $0 + $1.frames.load(ordering: .relaxed) }
        precondition(delivered == count, "subscribers are not live")
        precondition(handedOver == min(count, outboxes.count), "one hand-over per loop")
    }

    /// Dispatches one message at the channel's next offset.
    @inline(__always)
    func dispatchNext() {
        let offset = lastOffset.add(1, ordering: .relaxed).newValue
        hub.dispatch(ChannelMessage(channel: Fixture.channel, epoch: Fixture.epoch, offset: offset, data: Fixture.data))
    }
}

func fanOutBenchmarks() {
    // One `Hub.dispatch`: the frame is built once, every subscriber takes it and joins its
    // loop's batch under the hub's lock, and each batch is committed once. One iteration is
    // one published message (N deliveries).
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
    // What the WebSocket connection does with every text message a client sends:
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
