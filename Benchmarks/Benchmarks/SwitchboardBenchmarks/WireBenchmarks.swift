import Benchmark
import NIOCore
import SwitchboardCore
import SwitchboardProtocol
// `Deflate` and `RequestHead` are internal to the server; they are marked
// `@_spi(Benchmarks) public` for this package.
@_spi(Benchmarks) import SwitchboardServer

// MARK: - Fixtures of the wire

enum WireFixture {
    /// A client's masked text frame (RFC 6455 section 5.2) holding `payload`, as a browser
    /// sends it: FIN, opcode 1, the mask bit, a 7- or 16-bit length, the key, the payload
    /// XORed with the key.
    static func maskedTextFrame(_ payload: [UInt8], key: (UInt8, UInt8, UInt8, UInt8) = (0x37, 0xFA, 0x21, 0x3D)) -> [UInt8] {
        var frame: [UInt8] = [0x81]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else {
            precondition(payload.count <= 0xFFFF)
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        }
        let mask = [key.0, key.1, key.2, key.3]
        frame += mask
        for (i, byte) in payload.enumerated() { frame.append(byte ^ mask[i & 3]) }
        return frame
    }

    /// A publish command of exactly `size` bytes: `{"id":7,"op":"publish","channel":"chat:a","data":{"text":"xx…"}}`.
    static func publishCommand(size: Int) -> [UInt8] {
        let head = #"{"id":7,"op":"publish","channel":"chat:a","data":{"text":""#
        let tail = #""}}"#
        let text = head + String(repeating: "x", count: size - head.utf8.count - tail.utf8.count) + tail
        precondition(text.utf8.count == size)
        return Array(text.utf8)
    }

    /// A realistic 2 KiB JSON document (2,069 bytes): a quote board of 20 stocks, with
    /// numbers that vary (a fixed pseudo-random sequence, the same in every run).
    static let quotes: String = {
        let symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AVGO", "JPM", "LLY",
                       "V", "UNH", "XOM", "MA", "JNJ", "PG", "HD", "COST", "MRK", "ABBV"]
        var seed: UInt64 = 0x5EED_1234_ABCD_0001
        func next(_ range: ClosedRange<Int>) -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return range.lowerBound + Int((seed >> 33) % UInt64(range.count))
        }
        func decimal(_ hundredths: Int) -> String {
            let sign = hundredths < 0 ? "-" : ""
            let value = abs(hundredths)
            let cents = value % 100
            return "\(sign)\(value / 100).\(cents < 10 ? "0" : "")\(cents)"
        }
        var items: [String] = []
        for symbol in symbols {
            let price = next(2_000...95_000)
            let change = next(-900...900)
            let percent = change * 10_000 / price
            let volume = next(150_000...90_000_000)
            items.append(
                #"{"symbol":"\#(symbol)","price":\#(decimal(price)),"change":\#(decimal(change)),"#
                    + #""changePercent":\#(decimal(percent)),"open":\#(decimal(price - change)),"volume":\#(volume)}"#
            )
        }
        return #"{"type":"quotes","asOf":"2026-03-02T14:30:05.250Z","quotes":["#
            + items.joined(separator: ",") + "]}"
    }()

    /// The head of a browser's WebSocket handshake (Chrome on Linux, with permessage-deflate):
    /// 451 bytes, 10 fields.
    static let handshakeHead: [UInt8] = {
        let lines: [String] = [
            "GET /v1/ws HTTP/1.1",
            "Host: rt.example.com",
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Origin: https://app.example.com",
            "Sec-WebSocket-Version: 13",
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
            "Accept-Language: en-US,en;q=0.9",
            "Cookie: sid=3f9a1c7e5b2d4086; theme=dark",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        ]
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
    }()
}

/// Bytes that a benchmark changes in place, allocated once in setup.
final class MutableBytes: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer

    init(_ bytes: [UInt8]) {
        buffer = .allocate(byteCount: bytes.count, alignment: 16)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
    }

    deinit { buffer.deallocate() }
}

// MARK: - 5. WebSocket frame header parse + unmask

func frameHeaderBenchmarks() {
    // What `WebSocketHandler` does with each frame a client sends before the message is
    // looked at: `WebSocketFrameHeader.parse` of the frame's first bytes, then `unmask` of
    // the payload in place (eight bytes at a time). Unmasking twice gives back the masked
    // bytes, so every iteration sees the same kind of input.
    for (size, label, scaling) in [(100, "100-byte", BenchmarkScalingFactor.kilo), (4_096, "4 KiB", .kilo)] {
        Benchmark(
            "Frame header parse + unmask (\(label) payload)",
            configuration: .init(scalingFactor: scaling)
        ) { (benchmark: Benchmark, frame: MutableBytes) throws in
            let bytes = frame.buffer
            for _ in benchmark.scaledIterations {
                guard case .frame(let header) = try WebSocketFrameHeader.parse(
                    UnsafeRawBufferPointer(bytes), maxPayload: 1 << 20, compressionNegotiated: true
                ) else { fatalError("incomplete frame") }
                header.unmask(UnsafeMutableRawBufferPointer(rebasing: bytes[header.headerLength..<(header.headerLength + header.payloadLength)]))
                blackHole(header)
            }
        } setup: {
            let payload = WireFixture.publishCommand(size: size)
            let frame = MutableBytes(WireFixture.maskedTextFrame(payload))
            // Check the fixture: a whole frame whose payload unmasks to the command.
            guard case .frame(let header) = try WebSocketFrameHeader.parse(
                UnsafeRawBufferPointer(frame.buffer), maxPayload: 1 << 20, compressionNegotiated: true
            ), header.headerLength + header.payloadLength == frame.buffer.count, header.payloadLength == size else {
                fatalError("bad frame fixture")
            }
            let check = MutableBytes(WireFixture.maskedTextFrame(payload))
            header.unmask(UnsafeMutableRawBufferPointer(rebasing: check.buffer[header.headerLength...]))
            precondition(Array(check.buffer[header.headerLength...]) == payload)
            return frame
        }
    }
}

// MARK: - 6. permessage-deflate

/// The fixtures of the deflate benchmarks, made once.
struct DeflateFixture: Sendable {
    /// The `/v1/ws` push frame's JSON of a message whose data is the quote board: what
    /// `WebSocketConnection.deliver` compresses (`Deflate.frame(compressing: plain.json)`).
    let messageJSON: ByteBuffer
    /// A client's publish of the quote board, compressed as a client without context
    /// takeover sends it (raw DEFLATE, flushed, without `00 00 FF FF`).
    let compressedCommand: ByteBuffer
    let commandBytes: Int

    static func make() -> DeflateFixture {
        let message = ChannelMessage(channel: "prices:nasdaq", epoch: Fixture.epoch, offset: 1_234_567, data: WireFixture.quotes)
        var frames = MessageFrames(message)
        let json = frames.webSocket().json
        let command = #"{"id":7,"op":"publish","channel":"prices:nasdaq","data":"# + WireFixture.quotes + "}"
        let compressed = Deflate.compress(ByteBuffer(string: command))!
        // Check both directions once.
        let inflated = try! Deflate.inflate(compressed, limit: 1 << 20)
        precondition(String(buffer: inflated) == command)
        let frame = Deflate.frame(compressing: json)!
        let fixture = DeflateFixture(messageJSON: json, compressedCommand: compressed, commandBytes: command.utf8.count)
        fixture.report(frame: frame)
        return fixture
    }

    /// Prints the sizes once, for the record.
    func report(frame: ByteBuffer) {
        func ratio(_ a: Int, _ b: Int) -> String {
            let permille = a * 1000 / b
            return "\(permille / 10).\(permille % 10)%"
        }
        let document = WireFixture.quotes.utf8.count
        print(
            "deflate: quote board \(document) B; push frame JSON \(messageJSON.readableBytes) B → compressed frame "
                + "\(frame.readableBytes) B (\(ratio(frame.readableBytes, messageJSON.readableBytes)) of the JSON); "
                + "client publish \(commandBytes) B → \(compressedCommand.readableBytes) B (\(ratio(compressedCommand.readableBytes, commandBytes)))"
        )
    }
}

func deflateBenchmarks() {
    // Once per published message for all the connections that negotiated permessage-deflate:
    // the push frame's JSON compressed (a pooled zlib stream, reset after each message) and
    // put behind a text-frame header with RSV1.
    Benchmark(
        "Deflate frame (2 KiB JSON)",
        configuration: .init(scalingFactor: .kilo)
    ) { (benchmark: Benchmark, fixture: DeflateFixture) in
        for _ in benchmark.scaledIterations {
            blackHole(Deflate.frame(compressing: fixture.messageJSON))
        }
    } setup: {
        DeflateFixture.make()
    }

    // A compressed client message (RSV1), unmasked: inflated before it is parsed.
    Benchmark(
        "Deflate inflate (2 KiB JSON)",
        configuration: .init(scalingFactor: .kilo)
    ) { (benchmark: Benchmark, fixture: DeflateFixture) throws in
        for _ in benchmark.scaledIterations {
            blackHole(try Deflate.inflate(fixture.compressedCommand, limit: 1 << 20))
        }
    } setup: {
        DeflateFixture.make()
    }
}

// MARK: - 7. Handshake request head

func requestHeadBenchmarks() {
    // What `FirstRequestHandler` does with a new connection's first bytes: `RequestHead.parse`
    // of the whole head (request line, then every field as a name and a trimmed value).
    let limit = 80 * 1024 // FirstRequestHandler.headLimit
    Benchmark(
        "Request head parse (WebSocket handshake)",
        configuration: .init(scalingFactor: .kilo)
    ) { (benchmark: Benchmark, head: [UInt8]) in
        head.withUnsafeBytes { bytes in
            for _ in benchmark.scaledIterations {
                blackHole(RequestHead.parse(bytes, limit: limit))
            }
        }
    } setup: {
        let head = WireFixture.handshakeHead
        guard case .head(_, let length) = head.withUnsafeBytes({ RequestHead.parse($0, limit: limit) }), length == head.count else {
            fatalError("bad handshake fixture")
        }
        print("request head: \(head.count) B")
        return head
    }
}
