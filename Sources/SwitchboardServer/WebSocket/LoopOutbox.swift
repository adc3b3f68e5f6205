import NIOCore
import Synchronization
import SwitchboardCore

/// Frames on their way to the WebSocket connections of one event loop.
///
/// Any thread may add to it. The first addition after a drain schedules one drain on the
/// loop, which writes every frame without a flush and then flushes each connection it
/// touched once. So a publish to a thousand subscribers costs one hop per event loop, not a
/// task wake-up per connection, and a busy connection gets one flush per batch.
///
/// After a large drain (a fan-out to hundreds of connections), the next one waits until
/// `interval` has passed: under a stream of such publishes, frames gather and each
/// connection gets them with one system call, which is what the CPU goes on at high fan-out
/// (TCP sends, not our code). Small drains, and a quiet loop, go at once.
final class LoopOutbox: Sendable {
    enum Item: Sendable {
        /// A whole WebSocket frame (header included).
        case frame(ByteBuffer)
        /// Close for this reason after the frames before it.
        case close(CloseReason)
    }

    private struct Pending {
        var items: [(NIOLoopBound<WebSocketHandler>, Item)] = []
        var scheduled = false
        var lastDrain = NIODeadline.uptimeNanoseconds(0)
        var lastDrainSize = 0
    }

    /// Frames in a drain from which the next drain waits for `interval`.
    static let largeDrain = 256

    let eventLoop: any EventLoop
    let interval: TimeAmount
    private let pending = Mutex(Pending())

    init(eventLoop: any EventLoop, interval: TimeAmount) {
        self.eventLoop = eventLoop
        self.interval = interval
    }

    func add(_ item: Item, for connection: NIOLoopBound<WebSocketHandler>) {
        let schedule = pending.withLock { p in
            p.items.append((connection, item))
            defer { p.scheduled = true }
            return !p.scheduled
        }
        if schedule { eventLoop.execute { self.drainSoon() } }
    }

    /// Waits until `connection` has room for a batch of catch-up (half its queue limit free).
    func waitForRoom(_ connection: NIOLoopBound<WebSocketHandler>, channel: any Channel) async {
        while channel.isActive {
            let room = try? await eventLoop.submit { connection.value.hasRoom }.get()
            if room ?? true { return }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    private func drainSoon() {
        let (last, size) = pending.withLock { ($0.lastDrain, $0.lastDrainSize) }
        let next = last + interval
        if size < Self.largeDrain || next <= .now() {
            drain()
        } else {
            eventLoop.scheduleTask(deadline: next) { self.drain() }
        }
    }

    private func drain() {
        let items = pending.withLock { p in
            p.scheduled = false
            p.lastDrain = .now()
            p.lastDrainSize = p.items.count
            let items = p.items
            p.items = []
            return items
        }
        var touched: [WebSocketHandler] = []
        for (connection, item) in items {
            let handler = connection.value
            if handler.write(item) { touched.append(handler) }
        }
        for handler in touched { handler.flushBatch() }
    }
}

/// One value per event loop (an outbox, a heartbeat), made on first use.
final class PerEventLoop<Value: Sendable>: Sendable {
    private let values = Mutex<[ObjectIdentifier: Value]>([:])
    private let make: @Sendable (any EventLoop) -> Value

    init(_ make: @escaping @Sendable (any EventLoop) -> Value) {
        self.make = make
    }

    func callAsFunction(_ eventLoop: any EventLoop) -> Value {
        values.withLock { all in
            let key = ObjectIdentifier(eventLoop)
            if let value = all[key] { return value }
            let value = make(eventLoop)
            all[key] = value
            return value
        }
    }
}
