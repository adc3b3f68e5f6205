import Foundation
import SwitchboardCore

/// A WebSocket client on a plain socket, for clients no library would be: one that stops
/// reading (a slow consumer), never answers pings (a dead peer), or breaks the protocol.
final class RawWebSocket: @unchecked Sendable {
    let fd: Int32
    private var buffer: [UInt8] = []
    /// The handshake's response head.
    private(set) var responseHead = ""

    /// Connects and completes the handshake; `receiveBuffer` shrinks the socket's buffer;
    /// `early` bytes (frames) go in the same write as the handshake.
    init(port: Int, path: String = "/v1/ws", headers: [String: String] = [:], receiveBuffer: Int32? = nil, early: [UInt8] = []) throws {
        fd = try RawSocket.connect(port: port, receiveBuffer: receiveBuffer)
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (k, v) in headers { request += "\(k): \(v)\r\n" }
        writeAll(Array((request + "\r\n").utf8) + early)
        let head = try readUntilHeaderEnd()
        responseHead = head
        guard head.hasPrefix("HTTP/1.1 101") else { throw TestFailure("upgrade refused: \(head)") }
    }

    /// A response header's value (case-insensitive name).
    func responseHeader(_ name: String) -> String? {
        for line in responseHead.split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == name.lowercased() { return parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }

    /// The bytes of one client frame: masked unless `masked` is false; `first` overrides the
    /// first byte (FIN, RSV bits, opcode) as built from `fin`, `rsv1` and `opcode`.
    static func frameBytes(opcode: UInt8, payload: [UInt8], fin: Bool = true, rsv1: Bool = false, masked: Bool = true, first: UInt8? = nil) -> [UInt8] {
        var frame: [UInt8] = [first ?? ((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode)]
        let maskBit: UInt8 = masked ? 0x80 : 0
        if payload.count < 126 {
            frame.append(maskBit | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            frame.append(maskBit | 126)
            frame += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            frame.append(maskBit | 127)
            frame += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        guard masked else { return frame + payload }
        let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        return frame
    }

    /// Sends raw bytes: frames, parts of frames, anything.
    func send(bytes: [UInt8]) {
        writeAll(bytes)
    }

    func sendFrame(opcode: UInt8, payload: [UInt8], fin: Bool = true, rsv1: Bool = false, masked: Bool = true) {
        writeAll(Self.frameBytes(opcode: opcode, payload: payload, fin: fin, rsv1: rsv1, masked: masked))
    }

    /// The next frame that is not a ping (the heartbeat's), or nil.
    func readNonPing(timeout: Duration = .seconds(10)) -> Frame? {
        while let frame = readFrame(timeout: timeout) {
            if frame.opcode != 9 { return frame }
        }
        return nil
    }

    /// Whether the server closed the connection (end of stream) within `timeout`, reading
    /// and dropping whatever comes before.
    func closedByServer(timeout: Duration = .seconds(10)) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) >= 0 else { return true }
            if poller.revents == 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return true }
        }
        return false
    }

    deinit { Glibc.close(fd) }

    func close() { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    func sendText(_ text: String) {
        let payload = Array(text.utf8)
        var frame: [UInt8] = [0x81]
        let mask: [UInt8] = [1, 2, 3, 4]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else {
            frame.append(0x80 | 126)
            frame += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        }
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        writeAll(frame)
    }

    struct Frame {
        var opcode: UInt8
        var payload: [UInt8]
        /// RSV1: compressed (permessage-deflate).
        var rsv1 = false
        var text: String { String(decoding: payload, as: UTF8.self) }
        var json: JSONValue? { try? JSONValue.parse(payload) }
        /// The close code of a close frame.
        var closeCode: UInt16? { opcode == 8 && payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil }
    }

    /// The next frame, or nil if the connection closed or nothing came within `timeout`.
    func readFrame(timeout: Duration = .seconds(10)) -> Frame? {
        guard fill(2, timeout: timeout) else { return nil }
        let opcode = buffer[0] & 0x0F
        let rsv1 = buffer[0] & 0x40 != 0
        var length = Int(buffer[1] & 0x7F)
        var header = 2
        if length == 126 {
            guard fill(4, timeout: timeout) else { return nil }
            length = Int(buffer[2]) << 8 | Int(buffer[3])
            header = 4
        } else if length == 127 {
            guard fill(10, timeout: timeout) else { return nil }
            length = (2..<10).reduce(0) { $0 << 8 | Int(buffer[$1]) }
            header = 10
        }
        guard fill(header + length, timeout: timeout) else { return nil }
        let payload = Array(buffer[header..<(header + length)])
        buffer.removeFirst(header + length)
        return Frame(opcode: opcode, payload: payload, rsv1: rsv1)
    }

    private func fill(_ count: Int, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while buffer.count < count {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return false }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)) > 0 else { return false }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { return false }
            buffer += chunk[0..<n]
        }
        return true
    }

    private func readUntilHeaderEnd() throws -> String {
        while true {
            if let end = buffer.indices.dropLast(3).first(where: { buffer[$0] == 13 && buffer[$0 + 1] == 10 && buffer[$0 + 2] == 13 && buffer[$0 + 3] == 10 }) {
                let head = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                return head
            }
            guard fill(buffer.count + 1, timeout: .seconds(10)) else { throw TestFailure("no handshake response") }
        }
    }

    private func writeAll(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            sent += n
        }
    }
}

/// Reads a Server-Sent Events stream over a plain socket (the response is chunked).
final class RawEventStream: @unchecked Sendable {
    private let fd: Int32
    private var raw: [UInt8] = []
    private var body: [UInt8] = []
    private(set) var status = 0

    struct Event {
        var id: String?
        var event: String?
        var data: String
        var json: JSONValue? { try? JSONValue.parse(data) }
    }

    init(port: Int, path: String, headers: [String: String] = [:]) throws {
        fd = try RawSocket.connect(port: port)
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n"
        for (k, v) in headers { request += "\(k): \(v)\r\n" }
        RawSocket.send(fd, request + "\r\n")
        while true {
            if let end = findHeaderEnd() {
                let head = String(decoding: raw[..<end], as: UTF8.self)
                raw.removeFirst(end + 4)
                status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
                return
            }
            guard read(timeout: .seconds(10)) else { throw TestFailure("no SSE response") }
        }
    }

    deinit { RawSocket.close(fd) }

    func close() { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    /// The next event (comments skipped), or nil at the timeout or end of stream.
    func next(timeout: Duration = .seconds(10)) -> Event? {
        let deadline = ContinuousClock.now + timeout
        while true {
            decodeChunks()
            if let end = findEventEnd() {
                let text = String(decoding: body[..<end], as: UTF8.self)
                body.removeFirst(end + 2)
                var event = Event(data: "")
                var isComment = true
                for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                    if line.hasPrefix(":") { continue }
                    isComment = false
                    if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)) }
                    if line.hasPrefix("event: ") { event.event = String(line.dropFirst(7)) }
                    if line.hasPrefix("data: ") { event.data = String(line.dropFirst(6)) }
                }
                if isComment || (event.event == nil && event.data.isEmpty) { continue }
                return event
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero, read(timeout: left) else { return nil }
        }
    }

    /// Message events until `count` have come.
    func messages(_ count: Int, timeout: Duration = .seconds(20)) throws -> [Event] {
        var result: [Event] = []
        while result.count < count {
            guard let event = next(timeout: timeout) else { throw TestFailure("SSE ended after \(result.count) of \(count)") }
            if event.event == "message" { result.append(event) }
        }
        return result
    }

    private func read(timeout: Duration) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let millis = Int32(max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        guard poll(&poller, 1, millis) > 0 else { return false }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &chunk, chunk.count, 0)
        guard n > 0 else { return false }
        raw += chunk[0..<n]
        return true
    }

    private func findHeaderEnd() -> Int? {
        guard raw.count >= 4 else { return nil }
        return (0...(raw.count - 4)).first { raw[$0] == 13 && raw[$0 + 1] == 10 && raw[$0 + 2] == 13 && raw[$0 + 3] == 10 }
    }

    /// Moves whole chunks of the chunked body into `body`.
    private func decodeChunks() {
        while let lineEnd = (0..<max(0, raw.count - 1)).first(where: { raw[$0] == 13 && raw[$0 + 1] == 10 }) {
            guard let size = Int(String(decoding: raw[..<lineEnd], as: UTF8.self), radix: 16) else { return }
            guard raw.count >= lineEnd + 2 + size + 2 else { return }
            body += raw[(lineEnd + 2)..<(lineEnd + 2 + size)]
            raw.removeFirst(lineEnd + 2 + size + 2)
        }
    }

    private func findEventEnd() -> Int? {
        guard body.count >= 2 else { return nil }
        return (0...(body.count - 2)).first { body[$0] == 10 && body[$0 + 1] == 10 }
    }
}
