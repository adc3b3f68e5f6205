import NIOCore
import Synchronization

/// Frames on their way to the WebSocket connections of one event loop.
///
/// Any thread may add to it. The first addition after a drain schedules one drain on the
/// loop, which writes every frame without a flush and then flushes each connection it
/// touched once. So a publish to a thousand subscribers costs one hop per event loop, not a
/// task wake-up per connection, and a busy connection gets one flush per batch.
final class LoopOutbox: Sendable {
    enum Item: Sendable {
        /// A whole WebSocket frame (header included).
        case frame(ByteBuffer)
        /// Close with this code after the frames before it.
        case close(code: UInt16, reason: String)
    }

    private struct Pending {
        var items: [(NIOLoopBound<WebSocketHandler>, Item)] = []
        var scheduled = false
    }

    let eventLoop: any EventLoop
    private let pending = Mutex(Pending())

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func add(_ item: Item, for connection: NIOLoopBound<WebSocketHandler>) {
        let schedule = pending.withLock { p in
            p.items.append((connection, item))
            defer { p.scheduled = true }
            return !p.scheduled
        }
        if schedule { eventLoop.execute { self.drain() } }
    }

    private func drain() {
        let items = pending.withLock { p in
            p.scheduled = false
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

/// One outbox per event loop, made on first use.
final class LoopOutboxes: Sendable {
    private let outboxes = Mutex<[ObjectIdentifier: LoopOutbox]>([:])

    init() {}

    func outbox(for eventLoop: any EventLoop) -> LoopOutbox {
        outboxes.withLock { all in
            let key = ObjectIdentifier(eventLoop)
            if let outbox = all[key] { return outbox }
            let outbox = LoopOutbox(eventLoop: eventLoop)
            all[key] = outbox
            return outbox
        }
    }
}
