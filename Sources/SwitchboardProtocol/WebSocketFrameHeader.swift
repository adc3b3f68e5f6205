/// The header of a WebSocket frame from a client (RFC 6455 section 5.2), read and checked
/// before its payload: a pure parser over bytes, so that it can be fuzzed and unit-tested,
/// and so that the server reads frames without a decoder handler per connection.
public struct WebSocketFrameHeader: Sendable, Equatable {
    public enum Opcode: UInt8, Sendable {
        case continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA

        public var isControl: Bool { rawValue & 0x8 != 0 }
    }

    public var fin: Bool
    /// RSV1: the message is compressed (permessage-deflate, on its first frame only).
    public var compressed: Bool
    public var opcode: Opcode
    /// The client's masking key (every client frame is masked).
    public var mask: (UInt8, UInt8, UInt8, UInt8)
    public var payloadLength: Int
    /// Bytes of header before the payload.
    public var headerLength: Int

    public static func == (a: Self, b: Self) -> Bool {
        a.fin == b.fin && a.compressed == b.compressed && a.opcode == b.opcode && a.mask == b.mask
            && a.payloadLength == b.payloadLength && a.headerLength == b.headerLength
    }

    /// Why a frame is refused, with the close code RFC 6455 gives it.
    public struct Violation: Error, Sendable, Equatable, CustomStringConvertible {
        /// 1002 (protocol error) or 1009 (too big).
        public var code: UInt16
        public var description: String

        public init(code: UInt16, description: String) {
            self.code = code
            self.description = description
        }
    }

    public enum Parsed: Sendable, Equatable {
        case frame(WebSocketFrameHeader)
        /// More bytes are needed for the header.
        case incomplete
    }

    /// Reads the header at the start of `bytes`. `maxPayload` bounds a frame's payload;
    /// `compressionNegotiated` allows RSV1 on data frames.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxPayload: Int, compressionNegotiated: Bool) throws(Violation) -> Parsed {
        guard bytes.count >= 2 else { return .incomplete }
        let first = bytes[0]
        let second = bytes[1]
        guard let opcode = Opcode(rawValue: first & 0x0F) else {
            throw Violation(code: 1002, description: "unknown opcode \(first & 0x0F)")
        }
        let fin = first & 0x80 != 0
        let rsv1 = first & 0x40 != 0
        guard first & 0x30 == 0 else { throw Violation(code: 1002, description: "reserved bits set") }
        if rsv1 && (!compressionNegotiated || opcode.isControl || opcode == .continuation) {
            throw Violation(code: 1002, description: "reserved bit 1 set without permessage-deflate on a message's first frame")
        }
        guard second & 0x80 != 0 else { throw Violation(code: 1002, description: "client frames must be masked") }
        var length = Int(second & 0x7F)
        var offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return .incomplete }
            length = Int(bytes[2]) << 8 | Int(bytes[3])
            offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return .incomplete }
            var value: UInt64 = 0
            for i in 2..<10 { value = value << 8 | UInt64(bytes[i]) }
            guard value >> 63 == 0 else { throw Violation(code: 1002, description: "length with its top bit set") }
            guard value <= UInt64(maxPayload) else { throw Violation(code: 1009, description: "frame over \(maxPayload) bytes") }
            length = Int(value)
            offset = 10
        }
        if opcode.isControl {
            guard fin else { throw Violation(code: 1002, description: "a fragmented control frame") }
            guard length <= 125 else { throw Violation(code: 1002, description: "a control frame over 125 bytes") }
        }
        guard length <= maxPayload else { throw Violation(code: 1009, description: "frame over \(maxPayload) bytes") }
        guard bytes.count >= offset + 4 else { return .incomplete }
        let mask = (bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3])
        return .frame(WebSocketFrameHeader(
            fin: fin, compressed: rsv1, opcode: opcode, mask: mask, payloadLength: length, headerLength: offset + 4
        ))
    }

    /// Unmasks `payload` in place; `start` is how many payload bytes of this frame came
    /// before it (the key continues where they stopped). Eight bytes at a time.
    public func unmask(_ payload: UnsafeMutableRawBufferPointer, start: Int = 0) {
        guard let base = payload.baseAddress, !payload.isEmpty else { return }
        var i = 0
        // Byte by byte until the key's phase is 0 again, then whole words.
        while i < payload.count && (start + i) & 3 != 0 {
            payload[i] ^= maskByte(start + i)
            i += 1
        }
        let word = UInt64(mask.0) | UInt64(mask.1) << 8 | UInt64(mask.2) << 16 | UInt64(mask.3) << 24
        let wide = (word | word << 32).littleEndian
        while i + 8 <= payload.count {
            let value = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            base.storeBytes(of: value ^ wide, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < payload.count {
            payload[i] ^= maskByte(start + i)
            i += 1
        }
    }

    private func maskByte(_ index: Int) -> UInt8 {
        switch index & 3 {
        case 0: mask.0
        case 1: mask.1
        case 2: mask.2
        default: mask.3
        }
    }

    /// The code and reason of a close frame's (unmasked) payload, checked as RFC 6455
    /// section 7.4 requires: nil for an empty payload; 1002 for one byte or a code no one may
    /// send; 1007 for a reason that is not UTF-8.
    public static func closePayload(_ payload: UnsafeRawBufferPointer) throws(Violation) -> (code: UInt16, reason: String)? {
        guard !payload.isEmpty else { return nil }
        guard payload.count >= 2 else { throw Violation(code: 1002, description: "a close frame with a one-byte payload") }
        let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
        guard isValidCloseCode(code) else { throw Violation(code: 1002, description: "close code \(code) may not be sent") }
        guard let reason = String(validating: payload[2...], as: UTF8.self) else {
            throw Violation(code: 1007, description: "a close reason that is not UTF-8")
        }
        return (code, reason)
    }

    /// Codes a peer may send in a close frame (RFC 6455 section 7.4, IANA registry).
    public static func isValidCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }
}
