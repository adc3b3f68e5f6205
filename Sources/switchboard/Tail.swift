import ArgumentParser
import Foundation
import HummingbirdWSClient
import Logging
import NIOWebSocket
import Synchronization
import SwitchboardCore

/// `switchboard tail CHANNEL`: prints a channel's messages live, one JSON line each, and
/// reconnects with `since` after a drop so that nothing is missed or repeated.
struct Tail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a channel's messages live, one JSON line each.")

    @Argument(help: "The channel, e.g. collection:stocks or chat:lobby.")
    var channel: String

    @Option(help: "Start after this position, EPOCH:OFFSET (default: from now).")
    var since: String?

    @Option(help: "The server's URL (default http://127.0.0.1:8080). Env: SWITCHBOARD_URL.")
    var url: String?

    @Option(help: "A token for the server (JWT or API key). Env: SWITCHBOARD_TOKEN.")
    var token: String?

    func validate() throws {
        guard Names.isChannel(channel) else { throw ValidationError("bad channel name \"\(channel)\"") }
        if let since, Position(since) == nil { throw ValidationError("--since must be EPOCH:OFFSET, not \"\(since)\"") }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let base = url ?? environment["SWITCHBOARD_URL"] ?? "http://127.0.0.1:8080"
        var wsURL = base.replacingOccurrences(of: "http://", with: "ws://").replacingOccurrences(of: "https://", with: "wss://")
        while wsURL.hasSuffix("/") { wsURL.removeLast() }
        wsURL += "/v1/ws"
        if let token = token ?? environment["SWITCHBOARD_TOKEN"] {
            wsURL += "?token=" + (token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? token)
        }
        var logger = Logger(label: "switchboard-tail")
        logger.logLevel = .warning

        let state = TailState(position: since.flatMap { Position($0) })
        var delay = 0.25
        while true {
            let closeFrame: WebSocketCloseFrame?
            do {
                closeFrame = try await WebSocketClient.connect(
                    url: wsURL,
                    configuration: .init(maxFrameSize: 1 << 24),
                    logger: logger
                ) { inbound, outbound, _ in
                    var subscribe: JSONValue = ["id": 1, "op": "subscribe", "channel": .string(channel)]
                    if let position = state.value.withLock({ $0.position }) {
                        subscribe = .object(subscribe.objectValue!.merging(
                            ["since": ["epoch": .string(position.epoch), "offset": .int(position.offset)]], uniquingKeysWith: { $1 }))
                    }
                    try await outbound.write(.text(subscribe.serialized))
                    for try await message in inbound.messages(maxSize: 1 << 24) {
                        guard case .text(let text) = message, let frame = try? JSONValue.parse(text) else { continue }
                        if try Self.handle(frame, text: text, channel: channel, state: state) == .stop {
                            try await outbound.close(.normalClosure, reason: nil)
                            return
                        }
                    }
                }
                delay = 0.25
            } catch {
                closeFrame = nil
                FileHandle.standardError.write(Data("switchboard tail: \(error); retrying in \(delay)s\n".utf8))
            }
            if state.value.withLock({ $0.stopped }) { throw ExitCode.failure }
            if let code = closeFrame.map({ Int(UInt16(webSocketErrorCode: $0.closeCode)) }), (4000..<4100).contains(code) {
                FileHandle.standardError.write(Data("switchboard tail: closed by the server (\(code) \(closeFrame?.reason ?? "")); not reconnecting\n".utf8))
                throw ExitCode.failure
            }
            // Jittered exponential backoff, then resume from the last offset printed.
            try await Task.sleep(for: .milliseconds(Int(delay * 1000 * Double.random(in: 0.5...1.0))))
            delay = min(delay * 2, 10)
        }
    }

    private enum Next { case go, stop }

    private static func handle(_ frame: JSONValue, text: String, channel: String, state: TailState) throws -> Next {
        switch frame["type"]?.stringValue {
        case "message":
            guard frame["channel"]?.stringValue == channel, let position = Position(json: frame) else { return .go }
            FileHandle.standardOutput.write(Data((text + "\n").utf8))
            state.value.withLock { $0.position = position }
        case "reply" where frame["id"]?.intValue == 1:
            if let error = frame["error"] {
                FileHandle.standardError.write(Data("switchboard tail: subscribe failed: \(error.serialized)\n".utf8))
                state.value.withLock { $0.stopped = true }
                return .stop
            }
            guard let result = frame["result"], let position = Position(json: result) else { return .go }
            let hadPosition = state.value.withLock { s -> Bool in
                let had = s.position != nil
                if result["recovered"]?.boolValue != true { s.position = position }
                return had
            }
            if hadPosition && result["recovered"]?.boolValue != true {
                FileHandle.standardError.write(Data("switchboard tail: could not resume (history gone or epoch changed); continuing from \(position)\n".utf8))
            }
        default:
            break
        }
        return .go
    }
}

/// Where the tail is, shared by the connection's handler and the reconnect loop.
private final class TailState: Sendable {
    struct Value {
        var position: Position?
        var stopped = false
    }

    let value: Mutex<Value>

    init(position: Position?) {
        value = Mutex(Value(position: position))
    }
}
