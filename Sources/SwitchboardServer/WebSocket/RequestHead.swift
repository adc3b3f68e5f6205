import SwitchboardProtocol

/// The head of an HTTP/1 request (RFC 9112 section 2 and 3), read from a connection's
/// first bytes by `FirstRequestHandler`: enough to answer a WebSocket handshake without an
/// HTTP pipeline. Other requests go on to NIO's HTTP parser, which reads the head again.
///
/// Plain Swift over bytes, no NIO, so that the fuzzer builds it alone (`Fuzz/run.sh head`).
@_spi(Benchmarks) public struct RequestHead: Equatable, Sendable {
    struct Field: Equatable, Sendable {
        /// Lowercased (field names are case-insensitive), so that lookups allocate nothing.
        var name: String
        var value: String
    }

    var method: String
    var target: String
    /// "HTTP/1.1" or "HTTP/1.0".
    var version: String
    var fields: [Field]

    @_spi(Benchmarks) public enum Parsed: Equatable, Sendable {
        /// The empty line that ends the head has not arrived yet.
        case incomplete
        /// The head and how many bytes it took, its final empty line included.
        case head(RequestHead, length: Int)
        /// Not an HTTP/1 request head: answer 400 and close.
        case malformed(String)
        /// Longer than the limit without ending: answer 431 and close.
        case tooLarge
    }

    /// Reads a head from the start of `bytes`. Lines end with CRLF (a bare LF is accepted,
    /// as NIO's parser does); header values are trimmed of spaces and tabs.
    @_spi(Benchmarks) public static func parse(_ bytes: UnsafeRawBufferPointer, limit: Int) -> Parsed {
        var lines: [Range<Int>] = []
        var start = 0
        var index = 0
        while true {
            guard index < bytes.count else { return bytes.count > limit ? .tooLarge : .incomplete }
            if index >= limit { return .tooLarge }
            if bytes[index] == lf {
                let end = index > start && bytes[index - 1] == cr ? index - 1 : index
                if end == start {
                    if lines.isEmpty {
                        // Empty lines before the request line are allowed (RFC 9112 section 2.2).
                        start = index + 1
                        index += 1
                        continue
                    }
                    return build(bytes, lines: lines, length: index + 1)
                }
                lines.append(start..<end)
                start = index + 1
            }
            index += 1
        }
    }

    /// Every value of the field `name` (given in lowercase), in order.
    func values(_ name: String) -> [String] {
        fields.compactMap { $0.name == name ? $0.value : nil }
    }

    func first(_ name: String) -> String? {
        fields.first { $0.name == name }?.value
    }

    /// Whether a comma-separated field (`Connection`, `Upgrade`) lists `token`.
    func lists(_ name: String, token: String) -> Bool {
        values(name).contains { value in
            value.split(separator: ",").contains { $0.trimmingSpaces.lowercased() == token }
        }
    }

    /// An `Upgrade: websocket` request, which this server answers itself.
    var asksForWebSocket: Bool { lists("upgrade", token: "websocket") }

    // MARK: Grammar

    private static let cr: UInt8 = 13
    private static let lf: UInt8 = 10

    private static func build(_ bytes: UnsafeRawBufferPointer, lines: [Range<Int>], length: Int) -> Parsed {
        let requestLine = bytes[lines[0]]
        let parts = requestLine.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy(isTokenByte),
              !parts[1].isEmpty, parts[1].allSatisfy({ $0 > 32 && $0 != 127 })
        else { return .malformed("the request line is not METHOD TARGET VERSION") }
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { return .malformed("HTTP/1.0 or HTTP/1.1 only") }
        var fields: [Field] = []
        fields.reserveCapacity(lines.count - 1)
        for line in lines.dropFirst() {
            let field = bytes[line]
            guard let colon = field.firstIndex(of: 58), colon > field.startIndex,
                  field[..<colon].allSatisfy(isTokenByte)
            else { return .malformed("a header line is not NAME: VALUE") }
            let value = field[(colon + 1)...]
            guard value.allSatisfy({ $0 == 9 || ($0 >= 32 && $0 != 127) }) else {
                return .malformed("a header value holds a control character")
            }
            // Optional whitespace around the value is not part of it (RFC 9110 section 5.5).
            let isSpace = { (byte: UInt8) in byte == 32 || byte == 9 }
            let start = value.firstIndex { !isSpace($0) } ?? value.endIndex
            let end = value.lastIndex { !isSpace($0) }.map { $0 + 1 } ?? start
            fields.append(Field(
                name: String(decoding: field[..<colon].lazy.map(lowercase), as: UTF8.self),
                value: String(decoding: value[start..<end], as: UTF8.self)
            ))
        }
        return .head(
            RequestHead(
                method: String(decoding: parts[0], as: UTF8.self),
                target: String(decoding: parts[1], as: UTF8.self),
                version: version,
                fields: fields
            ),
            length: length
        )
    }

    private static func lowercase(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
    }

    /// RFC 9110 section 5.6.2: `tchar`.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
