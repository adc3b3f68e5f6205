import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWSClient
import Logging
import NIOCore
import NIOSSL
import NIOWebSocket
import Synchronization
import SwitchboardCore

/// A real WebSocket client for tests: frames in arrival order, commands with replies,
/// and the server's close code.
final class WSClient: Sendable {
    enum Outgoing: Sendable {
        case text(String)
        case binary([UInt8])
        /// A text frame with these exact bytes (which may not be UTF-8).
        case rawText([UInt8])
        case close
    }

    private let inbox = Inbox()
    private let outgoing: AsyncStream<Outgoing>.Continuation
    private let task: Task<UInt16?, Never>
    private let ids = Counter()

    init(url: String, headers: [String: String], tls: TLSConfiguration? = nil) {
        let (stream, continuation) = AsyncStream.makeStream(of: Outgoing.self)
        outgoing = continuation
        let inbox = self.inbox
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 24)
        for (k, v) in headers { configuration.additionalHeaders[HTTPField.Name(k)!] = v }
        if tls != nil { configuration.sniHostname = "localhost" }  // No SNI for an IP address.
        let config = configuration
        task = Task {
            var logger = Logger(label: "ws-test-client")
            logger.logLevel = .critical
            let closeFrame = try? await WebSocketClient.connect(url: url, configuration: config, tlsConfiguration: tls, logger: logger) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await item in stream {
                            switch item {
                            case .text(let text): try await outbound.write(.text(text))
                            case .binary(let bytes): try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
                            case .rawText(let bytes):
                                try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: bytes))))
                            case .close:
                                try await outbound.close(.normalClosure, reason: nil)
                                return
                            }
                        }
                    }
                    for try await message in inbound.messages(maxSize: 1 << 24) {
                        if case .text(let text) = message { await inbox.push(text) }
                    }
                    group.cancelAll()
                }
            }
            await inbox.finish()
            return closeFrame.map { UInt16(webSocketErrorCode: $0.closeCode) }
        }
    }

    /// Connects and reads the `welcome` frame.
    static func connect(
        _ server: TestServer, query: String = "", headers: [String: String] = [:], url: String? = nil, tls: TLSConfiguration? = nil
    ) async throws -> WSClient {
        let client = WSClient(url: (url ?? server.wsURL) + query, headers: headers, tls: tls)
        guard let welcome = try await client.next(), welcome["type"] == "welcome" else {
            throw TestFailure("no welcome frame")
        }
        return client
    }

    func sendText(_ text: String) { outgoing.yield(.text(text)) }
    func sendBinary(_ bytes: [UInt8]) { outgoing.yield(.binary(bytes)) }
    func sendRawText(_ bytes: [UInt8]) { outgoing.yield(.rawText(bytes)) }

    func close() async -> UInt16? {
        outgoing.yield(.close)
        return await closeCode()
    }

    /// Waits for the connection to end and returns the server's close code; after
    /// `timeout`, drops the connection (nil), so that a server that never closes fails the
    /// test instead of hanging the suite.
    func closeCode(within timeout: Duration = .seconds(30)) async -> UInt16? {
        let task = self.task
        let timer = Task {
            try await Task.sleep(for: timeout)
            task.cancel()
        }
        defer { timer.cancel() }
        return await task.value
    }

    /// The next text frame as it came (for protocols other than `/v1/ws`); nil once closed.
    func nextText(timeout: Duration = .seconds(10)) async throws -> String? {
        try await inbox.next(timeout: timeout)
    }

    /// The next frame (pushes and replies, in order); nil once the connection has closed.
    func next(timeout: Duration = .seconds(10)) async throws -> JSONValue? {
        guard let text = try await inbox.next(timeout: timeout) else { return nil }
        return try JSONValue.parse(text)
    }

    /// Sends a command and returns its reply, keeping any pushes that came first for `next`.
    func command(_ op: String, _ fields: [String: JSONValue] = [:], timeout: Duration = .seconds(10)) async throws -> JSONValue {
        let id = ids.next()
        var object = fields
        object["id"] = .int(id)
        object["op"] = .string(op)
        sendText(JSONValue.object(object).serialized)
        return try await reply(id: id, timeout: timeout)
    }

    /// Reads frames until the reply with `id`; pushes before it stay queued.
    func reply(id: Int64, timeout: Duration = .seconds(10)) async throws -> JSONValue {
        guard let text = try await inbox.take(timeout: timeout, where: { text in
            guard let v = try? JSONValue.parse(text) else { return false }
            return v["type"] == "reply" && v["id"]?.intValue == id
        }) else { throw TestFailure("connection closed before reply \(id)") }
        return try JSONValue.parse(text)
    }

    /// Collects `count` message pushes of `channel`.
    func messages(_ count: Int, channel: String? = nil, timeout: Duration = .seconds(20)) async throws -> [JSONValue] {
        var result: [JSONValue] = []
        while result.count < count {
            guard let frame = try await next(timeout: timeout) else {
                throw TestFailure("connection closed after \(result.count) of \(count) messages")
            }
            if frame["type"] == "message", channel == nil || frame["channel"]?.stringValue == channel {
                result.append(frame)
            }
        }
        return result
    }
}

private final class Counter: Sendable {
    private let value = Mutex<Int64>(0)
    func next() -> Int64 { value.withLock { $0 += 1; return $0 } }
}

/// Frames received, waited on with a timeout.
private actor Inbox {
    private var frames: [String] = []
    private var finished = false
    private var waiter: (id: Int, continuation: CheckedContinuation<Void, Never>)?
    private var waiterID = 0

    func push(_ text: String) {
        frames.append(text)
        wake()
    }

    func finish() {
        finished = true
        wake()
    }

    private func wake() {
        if let w = waiter {
            waiter = nil
            w.continuation.resume()
        }
    }

    func next(timeout: Duration) async throws -> String? {
        try await take(timeout: timeout, where: { _ in true })
    }

    /// Removes and returns the first frame matching `predicate`, waiting up to `timeout`.
    func take(timeout: Duration, where predicate: @Sendable (String) -> Bool) async throws -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let index = frames.firstIndex(where: predicate) {
                return frames.remove(at: index)
            }
            if finished { return nil }
            guard ContinuousClock.now < deadline else { throw TestFailure("timed out waiting for a frame") }
            waiterID += 1
            let id = waiterID
            let timer = Task { [weak self] in
                try? await Task.sleep(until: deadline)
                await self?.expire(id)
            }
            await withCheckedContinuation { continuation in
                waiter = (id, continuation)
            }
            timer.cancel()
        }
    }

    private func expire(_ id: Int) {
        if let w = waiter, w.id == id {
            waiter = nil
            w.continuation.resume()
        }
    }
}
