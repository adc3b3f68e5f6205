import CompressNIO
import NIOCore
import Synchronization
import SwitchboardCore

/// permessage-deflate's compression (RFC 7692 section 7.2) without context takeover: each
/// message compressed on its own, so one compressed frame serves every subscriber that
/// negotiated the extension, and no connection holds zlib state. The streams (about 300 KiB
/// each) are pooled and reset after each message.
@_spi(Benchmarks) public enum Deflate {
    /// Messages shorter than this go out uncompressed (allowed on any connection): deflate
    /// gains nothing on them and costs CPU.
    static let minimumBytes = 256

    /// A text frame of `text` compressed (RSV1 set); nil when it is short, or would not get smaller.
    @_spi(Benchmarks) public static func frame(compressing text: ByteBuffer) -> ByteBuffer? {
        guard text.readableBytes >= minimumBytes, let payload = compress(text), payload.readableBytes < text.readableBytes else {
            return nil
        }
        var out = ByteBuffer()
        out.reserveCapacity(WebSocketWire.headerLength(payload: payload.readableBytes) + payload.readableBytes)
        WebSocketWire.writeHeader(opcode: WebSocketWire.text, payloadLength: payload.readableBytes, to: &out, compressed: true)
        out.writeImmutableBuffer(payload)
        return out
    }

    /// Raw DEFLATE, flushed, without the trailing `00 00 FF FF` (section 7.2.1).
    @_spi(Benchmarks) public static func compress(_ payload: ByteBuffer) -> ByteBuffer? {
        guard let deflater = deflaters.take() ?? (try? ZlibCompressor(algorithm: .deflate)) else { return nil }
        defer { deflaters.put(deflater) }
        var input = payload
        var output = ByteBuffer()
        output.reserveCapacity(deflater.maxSize(from: input))
        do {
            try deflater.deflate(from: &input, to: &output, flush: .sync)
            try deflater.reset()
        } catch {
            try? deflater.reset()
            return nil
        }
        guard output.readableBytes >= 4, output.getBytes(at: output.writerIndex - 4, length: 4) == [0, 0, 0xFF, 0xFF] else { return nil }
        output.moveWriterIndex(to: output.writerIndex - 4)
        return output
    }

    struct TooBig: Error {}

    /// Decompresses a client's message (section 7.2.2); over `limit` bytes is `TooBig`, and
    /// anything that is not DEFLATE is an error.
    @_spi(Benchmarks) public static func inflate(_ compressed: ByteBuffer, limit: Int) throws -> ByteBuffer {
        let inflater = try inflaters.take() ?? ZlibDecompressor(algorithm: .deflate, windowSize: 15)
        defer {
            try? inflater.reset()
            inflaters.put(inflater)
        }
        var input = compressed
        input.writeBytes([0, 0, 0xFF, 0xFF])
        var output = ByteBuffer()
        output.reserveCapacity(min(limit + 1, max(1024, compressed.readableBytes * 4)))
        while input.readableBytes > 0 {
            do {
                try inflater.inflate(from: &input, to: &output)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                // Out of room: grow, up to just over the limit.
                guard output.readableBytes <= limit else { throw TooBig() }
                output.reserveCapacity(min(limit + 1, output.capacity * 2))
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                // All input taken (and the output full at that moment).
                break
            }
            guard output.readableBytes <= limit else { throw TooBig() }
        }
        return output
    }

    private static let deflaters = Pool<ZlibCompressor>()
    private static let inflaters = Pool<ZlibDecompressor>()

    /// zlib streams ready for use; each is used by one thread at a time, between `take` and
    /// `put` (the lock guards the list).
    private final class Pool<Stream>: @unchecked Sendable {
        private var streams: [Stream] = []
        private let lock = Mutex(())

        func take() -> Stream? {
            lock.withLock { _ in streams.popLast() }
        }

        func put(_ stream: Stream) {
            lock.withLock { _ in
                // A few are enough: one per thread that compresses at once.
                if streams.count < 8 { streams.append(stream) }
            }
        }
    }
}
