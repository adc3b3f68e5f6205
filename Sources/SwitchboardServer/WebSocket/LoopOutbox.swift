import NIOCore
import Synchronization
import SwitchboardCore

/// Frames on their way to the WebSocket connections of one event loop.
///
/// Any thread may add to it; the first addition after a drain schedules one drain on the
/// loop. A publish to many subscribers is one entry per loop (`Fanout`: the frame, built
/// once, and the loop's connections that get it), not one per subscriber. A drain writes
/// without flushing and flushes each connection it touched once; consecutive fan-outs to
/// the same connections (one channel's messages) are joined into one buffer, made once and
/// shared by all of them. So batching follows the load: a quiet loop writes each message at
/// once, a busy one finds more waiting at each drain and writes them together. A connection
/// whose socket does not take what it is given gathers it in NIO's buffer until the kernel
/// takes it (writability), up to `queue_bytes` (then 4100).
///
/// A drain makes at most `writesPerTurn` writes, then lets the loop's other work run (HTTP
/// answers, reads, other tasks) and goes on where it stopped: a fan-out to thousands of
/// connections never holds the loop for more than about a millisecond, and what waits on
/// the loop is not queued behind all of it.
final class LoopOutbox: Sendable {
    private enum Entry {
        case frame(ByteBuffer, WebSocketHandler.Ref)
        case close(CloseReason, WebSocketHandler.Ref)
        case fanout(ByteBuffer, [WebSocketHandler.Ref])
    }

    /// One message's frame for the connections of this loop, gathered while the hub walks
    /// the subscribers and added as one entry at the end of the delivery.
    final class Fanout: DeliveryBatch, @unchecked Sendable {
        private let outbox: LoopOutbox
        private let frame: ByteBuffer
        /// Only touched by the delivery that made it (under the hub's lock), then handed over.
        private var connections: [WebSocketHandler.Ref] = []

        init(outbox: LoopOutbox, frame: ByteBuffer) {
            self.outbox = outbox
            self.frame = frame
        }

        func add(_ connection: WebSocketHandler.Ref) {
            connections.append(connection)
        }

        func commit() {
            outbox.add(.fanout(frame, connections))
        }
    }

    /// Keys of this loop's fan-outs in a delivery: one per encoding.
    final class Key: Sendable {}

    /// A wire format of channel messages (`/v1/ws`'s, Socket.IO's): the keys of its plain
    /// and compressed fan-outs, and the slot its compressed frame is kept in.
    struct Encoding: Sendable {
        let plain = Key()
        let deflated = Key()
        let deflatedSlot: MessageFrames.Slot
    }

    let webSocket = Encoding(deflatedSlot: .deflated)
    let socketIO = Encoding(deflatedSlot: .socketIOEventDeflated)

    private struct Pending {
        var entries: [Entry] = []
        /// A drain is scheduled or under way.
        var scheduled = false
    }

    /// Where a drain stopped: the entries taken, the next one, and within a fan-out (its
    /// frame joined with the ones after it) the next connection.
    private struct Cursor {
        var entries: [Entry]
        var index = 0
        var fanout: (frame: ByteBuffer, connections: [WebSocketHandler.Ref], next: Int, end: Int)?
    }

    /// Writes a drain makes before it lets the loop's other work run.
    static let writesPerTurn = 128

    let eventLoop: any EventLoop
    private let pending = Mutex(Pending())
    /// Only used on the loop, by the drain.
    private let cursor: NIOLoopBoundBox<Cursor?>

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.cursor = NIOLoopBoundBox(nil, eventLoop: eventLoop)
    }

    /// One connection's own frame (a reply, an event of its own).
    func add(_ frame: ByteBuffer, for connection: WebSocketHandler.Ref) {
        add(.frame(frame, connection))
    }

    /// Closes `connection` after the frames added before.
    func close(_ connection: WebSocketHandler.Ref, _ reason: CloseReason) {
        add(.close(reason, connection))
    }

    /// `connection`'s share of a delivery: `frame` in `encoding`, built once, goes to every
    /// connection of this loop that takes it, as one entry when the delivery commits. Where
    /// permessage-deflate was negotiated, the frame compressed instead (once per delivery),
    /// unless it is too short to pay.
    func fanout(_ frame: ByteBuffer, _ encoding: Encoding, deflate: Bool, frames: inout MessageFrames, for connection: WebSocketHandler.Ref) {
        if deflate {
            let compressed = frames.encoded(encoding.deflatedSlot) { _ in
                Deflate.frame(compressing: WebSocketWire.payload(of: frame)) ?? ByteBuffer()
            }
            if compressed.readableBytes > 0 {
                frames.batch(encoding.deflated) { Fanout(outbox: self, frame: compressed) }.add(connection)
                return
            }
        }
        frames.batch(encoding.plain) { Fanout(outbox: self, frame: frame) }.add(connection)
    }

    private func add(_ entry: Entry) {
        let schedule = pending.withLock { p in
            p.entries.append(entry)
            defer { p.scheduled = true }
            return !p.scheduled
        }
        if schedule { eventLoop.execute { self.drain() } }
    }

    /// Waits until `connection` can take more (its socket writable again, or gone): the
    /// pace of a catch-up from history.
    func waitForRoom(_ connection: WebSocketHandler.Ref) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            eventLoop.execute { connection.handler.whenWritable { continuation.resume() } }
        }
    }

    private func drain() {
        var work: Cursor
        if let stopped = cursor.value {
            work = stopped
        } else {
            let entries = pending.withLock { p in
                if p.entries.isEmpty { p.scheduled = false }
                defer { p.entries = [] }
                return p.entries
            }
            guard !entries.isEmpty else { return }
            work = Cursor(entries: entries)
        }
        var touched: [WebSocketHandler] = []
        var budget = Self.writesPerTurn
        while budget > 0 {
            if var fanout = work.fanout {
                let stop = min(fanout.connections.count, fanout.next + budget)
                for connection in fanout.connections[fanout.next..<stop] where connection.handler.write(fanout.frame) {
                    touched.append(connection.handler)
                }
                budget -= stop - fanout.next
                fanout.next = stop
                if stop == fanout.connections.count {
                    work.index = fanout.end
                    work.fanout = nil
                } else {
                    work.fanout = fanout
                }
                continue
            }
            guard work.index < work.entries.count else { break }
            switch work.entries[work.index] {
            case .frame(let frame, let connection):
                if connection.handler.write(frame) { touched.append(connection.handler) }
                work.index += 1
                budget -= 1
            case .close(let reason, let connection):
                connection.handler.close(reason)
                work.index += 1
            case .fanout(let frame, let connections):
                work.fanout = Self.join(work.entries, from: work.index, frame: frame, connections: connections)
            }
        }
        for handler in touched { handler.flush() }
        // Stopped with work left, or finished: either way the loop's other work goes first,
        // then this drain goes on (with what was added meanwhile, once these are done).
        let finished = work.fanout == nil && work.index == work.entries.count
        cursor.value = finished ? nil : work
        eventLoop.execute { self.drain() }
    }

    /// A fan-out joined with the fan-outs right after it to the same connections (a
    /// channel's next messages): one buffer, made once, for all of them.
    private static func join(
        _ entries: [Entry], from index: Int, frame: ByteBuffer, connections: [WebSocketHandler.Ref]
    ) -> (frame: ByteBuffer, connections: [WebSocketHandler.Ref], next: Int, end: Int) {
        var end = index + 1
        var joined: ByteBuffer?
        while end < entries.count, case .fanout(let next, let others) = entries[end], same(others, connections) {
            if joined == nil {
                joined = ByteBuffer()
                joined!.reserveCapacity(frame.readableBytes * 4)
                joined!.writeImmutableBuffer(frame)
            }
            joined!.writeImmutableBuffer(next)
            end += 1
        }
        return (joined ?? frame, connections, 0, end)
    }

    private static func same(_ a: [WebSocketHandler.Ref], _ b: [WebSocketHandler.Ref]) -> Bool {
        guard a.count == b.count else { return false }
        for i in a.indices where a[i].handler !== b[i].handler { return false }
        return true
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

