import NIOCore
import NIOWebSocket
import Synchronization

/// A message read from a WebSocket: the frames of one message, joined.
enum InboundMessage: Sendable {
    case text(String)
    case binary(ByteBuffer)
}

/// Ends a connection with a close code: a protocol error found while reading (RFC 6455).
struct CloseConnectionError: Error {
    let code: UInt16
    let reason: String
}

/// Writes a WebSocket's frames straight to its NIO channel. A batch of message frames is
/// written with one flush, and the frames' payloads are the hub's shared buffers.
final class FrameWriter: Sendable {
    private let outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>
    private let channel: any Channel
    private let closeSent = Mutex(false)
    private let closeTimeout: Duration

    init(outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>, channel: any Channel, closeTimeout: Duration) {
        self.outbound = outbound
        self.channel = channel
        self.closeTimeout = closeTimeout
    }

    /// Text frames, one per buffer, then one flush.
    func write(_ payloads: [ByteBuffer]) async throws {
        try await outbound.write(contentsOf: payloads.map { WebSocketFrame(fin: true, opcode: .text, data: $0) })
    }

    func pong(_ data: ByteBuffer) async throws {
        try await outbound.write(WebSocketFrame(fin: true, opcode: .pong, data: data))
    }

    func ping(_ data: ByteBuffer) async throws {
        try await outbound.write(WebSocketFrame(fin: true, opcode: .ping, data: data))
    }

    /// Sends a close frame once, stops writing, and drops the connection if the peer does not
    /// answer within the close timeout.
    func close(code: UInt16, reason: String?) async {
        let first = closeSent.withLock { sent in
            defer { sent = true }
            return !sent
        }
        guard first else { return }
        var data = channel.allocator.buffer(capacity: 2 + (reason?.utf8.count ?? 0))
        data.writeInteger(code)
        if let reason { data.writeString(String(reason.utf8.prefix(120)) ?? "") }
        try? await outbound.write(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))
        outbound.finish()
        let channel = self.channel
        let timeout = closeTimeout
        Task {
            try? await Task.sleep(for: timeout)
            try? await channel.close()
        }
    }

    func closeNow() async {
        try? await channel.close()
    }
}

/// Whether the peer answered the last ping.
final class Liveness: Sendable {
    private let awaitingPong = Mutex(false)

    /// True if the previous ping is still unanswered; marks a new one as sent.
    func pingDue() -> Bool {
        awaitingPong.withLock { waiting in
            defer { waiting = true }
            return waiting
        }
    }

    func ponged() {
        awaitingPong.withLock { $0 = false }
    }
}

/// Reads messages from a WebSocket's frames: answers pings, notes pongs, echoes a close,
/// joins fragments, and enforces the size limit and UTF-8 (RFC 6455).
struct InboundMessages {
    var frames: NIOAsyncChannelInboundStream<WebSocketFrame>.AsyncIterator
    let writer: FrameWriter
    let liveness: Liveness
    let maxSize: Int

    /// The next message; nil once the peer has closed.
    mutating func next() async throws -> InboundMessage? {
        var partial: (opcode: WebSocketOpcode, data: ByteBuffer)?
        while let frame = try await frames.next() {
            guard frame.reservedBits.isEmpty else { throw CloseConnectionError(code: 1002, reason: "reserved bits set") }
            switch frame.opcode {
            case .ping:
                guard frame.fin, frame.length <= 125 else { throw CloseConnectionError(code: 1002, reason: "bad ping") }
                try await writer.pong(frame.unmaskedData)
            case .pong:
                liveness.ponged()
            case .connectionClose:
                var data = frame.unmaskedData
                let code = data.readInteger(as: UInt16.self) ?? 1000
                await writer.close(code: code == 1005 || code == 1006 ? 1000 : code, reason: nil)
                return nil
            case .text, .binary:
                guard partial == nil else { throw CloseConnectionError(code: 1002, reason: "a new message inside a fragmented one") }
                if frame.fin { return try Self.message(frame.opcode, frame.unmaskedData) }
                partial = (frame.opcode, frame.unmaskedData)
            case .continuation:
                guard var (opcode, data) = partial else { throw CloseConnectionError(code: 1002, reason: "continuation without a message") }
                var more = frame.unmaskedData
                guard data.readableBytes + more.readableBytes <= maxSize else {
                    throw CloseConnectionError(code: 1009, reason: "message over \(maxSize) bytes")
                }
                data.writeBuffer(&more)
                if frame.fin { return try Self.message(opcode, data) }
                partial = (opcode, data)
            default:
                throw CloseConnectionError(code: 1002, reason: "unknown opcode")
            }
        }
        return nil
    }

    private static func message(_ opcode: WebSocketOpcode, _ data: ByteBuffer) throws -> InboundMessage {
        guard opcode == .text else { return .binary(data) }
        guard let text = String(validating: data.readableBytesView, as: UTF8.self) else {
            throw CloseConnectionError(code: 1007, reason: "text frame is not UTF-8")
        }
        return .text(text)
    }
}
