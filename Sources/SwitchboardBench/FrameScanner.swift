/// Reads what a subscriber needs from a server push without decoding JSON, so that the client
/// is not the bottleneck. Pushes have sorted keys,
/// `{"channel":…,"data":…,"epoch":"…","offset":N,"type":"message"}`, and the bench's data is
/// `{"p":"…","s":SEQ,"t":NANOS}`, so the offset and the send time are found from the end.
enum FrameScanner {
    enum Push: Equatable {
        /// A message; `sentAt` is nil when its data is not the bench's.
        case message(offset: Int64, sentAt: Int64?)
        /// Anything else: the welcome, a reply, an error push.
        case other
    }

    static func scan(_ bytes: UnsafeRawBufferPointer) -> Push {
        let end = bytes.count - messageSuffix.count
        guard end > messagePrefix.count,
              matches(messagePrefix, in: bytes, at: 0),
              matches(messageSuffix, in: bytes, at: end),
              let offsetKeyAt = lastIndex(of: offsetKey, in: bytes, before: end),
              let offset = integer(in: bytes, from: offsetKeyAt + offsetKey.count, to: end)
        else { return .other }
        return .message(offset: offset, sentAt: sentAt(in: bytes, before: offsetKeyAt))
    }

    /// The digits of `"t":NANOS` right before the data's closing brace and the epoch key.
    private static func sentAt(in bytes: UnsafeRawBufferPointer, before limit: Int) -> Int64? {
        guard let dataEnd = lastIndex(of: dataEndKey, in: bytes, before: limit) else { return nil }
        var digits = dataEnd
        while digits > 0, isDigit(bytes[digits - 1]) { digits -= 1 }
        guard digits >= timeKey.count, matches(timeKey, in: bytes, at: digits - timeKey.count) else { return nil }
        return integer(in: bytes, from: digits, to: dataEnd)
    }

    private static let messagePrefix = Array(#"{"channel":"#.utf8)
    private static let messageSuffix = Array(#","type":"message"}"#.utf8)
    private static let offsetKey = Array(#","offset":"#.utf8)
    private static let dataEndKey = Array(#"},"epoch":""#.utf8)
    private static let timeKey = Array(#""t":"#.utf8)

    @inline(__always)
    private static func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    private static func matches(_ pattern: [UInt8], in bytes: UnsafeRawBufferPointer, at start: Int) -> Bool {
        guard start >= 0, start + pattern.count <= bytes.count else { return false }
        for index in pattern.indices where bytes[start + index] != pattern[index] { return false }
        return true
    }

    /// Where `pattern` last starts, ending at or before `limit`.
    private static func lastIndex(of pattern: [UInt8], in bytes: UnsafeRawBufferPointer, before limit: Int) -> Int? {
        var start = limit - pattern.count
        while start >= 0 {
            if bytes[start] == pattern[0], matches(pattern, in: bytes, at: start) { return start }
            start -= 1
        }
        return nil
    }

    /// A non-negative decimal filling exactly `from..<to` that fits in an Int64.
    private static func integer(in bytes: UnsafeRawBufferPointer, from: Int, to: Int) -> Int64? {
        guard from < to, to - from <= 19 else { return nil }
        var value: Int64 = 0
        for index in from..<to {
            let byte = bytes[index]
            guard isDigit(byte) else { return nil }
            let (times10, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = times10.addingReportingOverflow(Int64(byte &- UInt8(ascii: "0")))
            guard !overflow, !carry else { return nil }
            value = sum
        }
        return value
    }
}
