import Synchronization

/// Makes record ids that sort in creation order: 48 bits of milliseconds and 80 bits that
/// are random for a new millisecond and count up within one (a ULID, monotonic per process),
/// in Crockford base32, 26 characters.
public final class RecordIDGenerator: Sendable {
    private struct State {
        var lastMillis: Int64 = 0
        var high: UInt16 = 0
        var low: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    public func next(nowMillis: Int64 = Timestamp.nowMilliseconds()) -> String {
        let (millis, high, low) = state.withLock { s -> (Int64, UInt16, UInt64) in
            if nowMillis > s.lastMillis {
                s.lastMillis = nowMillis
                s.high = UInt16.random(in: 0...UInt16.max) & 0x7FFF
                s.low = UInt64.random(in: 0...UInt64.max)
            } else {
                // Same (or earlier: clock went back) millisecond: count up so order holds.
                let (sum, overflow) = s.low.addingReportingOverflow(1)
                s.low = sum
                if overflow { s.high &+= 1 }
            }
            return (s.lastMillis, s.high, s.low)
        }
        return Self.encode(millis: UInt64(millis), high: high, low: low)
    }

    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    static func encode(millis: UInt64, high: UInt16, low: UInt64) -> String {
        // 128 bits: 48 time | 16 high | 64 low, written as 26 base32 digits (130 bits, top 2 zero).
        let hi = (millis << 16) | UInt64(high)  // top 64 bits
        let lo = low
        var out = [UInt8](repeating: 0, count: 26)
        for i in 0..<26 {
            let shift = (25 - i) * 5  // bit position of this digit in the 130-bit number
            var digit: UInt64
            if shift >= 64 {
                digit = (hi >> UInt64(shift - 64)) & 31
            } else if shift + 5 <= 64 {
                digit = (lo >> UInt64(shift)) & 31
            } else {
                digit = ((lo >> UInt64(shift)) | (hi << UInt64(64 - shift))) & 31
            }
            out[i] = alphabet[Int(digit)]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
