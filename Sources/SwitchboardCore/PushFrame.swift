import NIOCore

/// A text frame encoded once, whoever it goes to (every subscriber of a message, or one
/// connection's reply): the JSON, and the same bytes behind a WebSocket text-frame header. Both views share one buffer, so a WebSocket
/// write is a single buffer that every connection shares and no subscriber copies or encodes.
public struct PushFrame: Sendable {
    /// The whole WebSocket frame (server to client, unmasked): header and payload.
    public let wire: ByteBuffer
    /// The payload alone (for SSE and long-polling).
    public let json: ByteBuffer

    public init(json text: String) {
        let length = text.utf8.count
        var wire = ByteBuffer()
        wire.reserveCapacity(WebSocketWire.headerLength(payload: length) + length)
        WebSocketWire.writeHeader(opcode: WebSocketWire.text, payloadLength: length, to: &wire)
        let start = wire.writerIndex
        wire.writeString(text)
        self.wire = wire
        self.json = wire.getSlice(at: start, length: length)!
    }
}

extension ChannelMessage {
    /// The `/v1/ws` push frame.
    public var frame: PushFrame { PushFrame(json: json) }
}

/// Work gathered while one message is delivered, handed on once at the end of the
/// delivery: an event loop's share of a fan-out (the frame and the connections on that loop
/// that get it), so that a publish is one hand-over per loop, not one per subscriber.
public protocol DeliveryBatch: AnyObject {
    func commit()
}

/// The encodings of one channel message for one delivery: each is built the first time a
/// subscriber asks for it, and the same bytes go to every later subscriber. The hub makes
/// one per message and hands it `inout` down its subscriber list, so a message costs one
/// encoding per wire format, not one per subscriber. It also holds the delivery's batches,
/// which whoever delivers commits once every subscriber has had the message.
public struct MessageFrames {
    public let message: ChannelMessage
    private var webSocketFrame: PushFrame?
    private var others: [Slot: ByteBuffer] = [:]
    /// Few (one per event loop and encoding): a list, not a dictionary.
    private var batches: [(key: ObjectIdentifier, batch: any DeliveryBatch)] = []

    /// Encodings other transports keep here.
    public enum Slot: Hashable, Sendable {
        /// A Socket.IO event (`42["channel",data]`) as a WebSocket frame.
        case socketIOEvent
        /// The start of a Socket.IO event whose offset argument each connection appends.
        case socketIOEventPrefix
        /// A Socket.IO event as an Engine.IO polling packet.
        case socketIOPacket
        /// The `/v1/ws` push frame compressed (permessage-deflate).
        case deflated
        /// A Socket.IO event compressed, as a WebSocket frame.
        case socketIOEventDeflated
    }

    public init(_ message: ChannelMessage) {
        self.message = message
    }

    /// The `/v1/ws` push frame (SSE and long-polling send its JSON).
    public mutating func webSocket() -> PushFrame {
        if let webSocketFrame { return webSocketFrame }
        let frame = message.frame
        webSocketFrame = frame
        return frame
    }

    /// The batch under `key` for this delivery, made by `make` the first time.
    public mutating func batch<Batch: DeliveryBatch>(_ key: AnyObject, _ make: () -> Batch) -> Batch {
        let id = ObjectIdentifier(key)
        for entry in batches where entry.key == id {
            return unsafeDowncast(entry.batch, to: Batch.self)
        }
        let batch = make()
        batches.append((id, batch))
        return batch
    }

    /// Hands on the delivery's batches; called once, after the last subscriber.
    public mutating func commit() {
        for entry in batches { entry.batch.commit() }
        batches = []
    }

    /// The encoding in `slot`, built by `build` the first time.
    public mutating func encoded(_ slot: Slot, _ build: (ChannelMessage) -> ByteBuffer) -> ByteBuffer {
        if let cached = others[slot] { return cached }
        let built = build(message)
        others[slot] = built
        return built
    }
}

/// Server-to-client WebSocket frames (RFC 6455 section 5.2): unmasked, never fragmented.
public enum WebSocketWire {
    public static let text: UInt8 = 0x1
    public static let close: UInt8 = 0x8
    public static let ping: UInt8 = 0x9
    public static let pong: UInt8 = 0xA

    public static func headerLength(payload: Int) -> Int {
        payload < 126 ? 2 : payload <= 0xFFFF ? 4 : 10
    }

    /// `compressed` sets RSV1: the payload is compressed (permessage-deflate).
    public static func writeHeader(opcode: UInt8, payloadLength: Int, to buffer: inout ByteBuffer, compressed: Bool = false) {
        buffer.writeInteger(0x80 | (compressed ? 0x40 : 0) | opcode)
        if payloadLength < 126 {
            buffer.writeInteger(UInt8(payloadLength))
        } else if payloadLength <= 0xFFFF {
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(payloadLength))
        } else {
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(payloadLength))
        }
    }

    /// One frame holding `payload` (copied behind the header).
    public static func frame(opcode: UInt8, payload: ByteBuffer) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(headerLength(payload: payload.readableBytes) + payload.readableBytes)
        writeHeader(opcode: opcode, payloadLength: payload.readableBytes, to: &out)
        out.writeImmutableBuffer(payload)
        return out
    }

    /// The payload of a server frame built here (after its header).
    public static func payload(of frame: ByteBuffer) -> ByteBuffer {
        let code = Int(frame.getInteger(at: frame.readerIndex + 1, as: UInt8.self) ?? 0) & 0x7F
        let header = code < 126 ? 2 : code == 126 ? 4 : 10
        return frame.getSlice(at: frame.readerIndex + header, length: frame.readableBytes - header) ?? ByteBuffer()
    }

    /// A close frame with `code` and a reason cut to fit the 125-byte control-frame limit.
    public static func closeFrame(code: UInt16, reason: String?) -> ByteBuffer {
        var payload = ByteBuffer()
        payload.writeInteger(code)
        if let reason { payload.writeString(String(decoding: Self.prefix(reason, bytes: 123), as: UTF8.self)) }
        return frame(opcode: close, payload: payload)
    }

    /// At most `bytes` bytes of `text`, not cutting a character in two.
    static func prefix(_ text: String, bytes: Int) -> [UInt8] {
        var out: [UInt8] = []
        for character in text {
            let utf8 = Array(String(character).utf8)
            guard out.count + utf8.count <= bytes else { break }
            out += utf8
        }
        return out
    }
}
