import ArgumentParser
import Foundation
import SwitchboardClient

/// `switchboard tail CHANNEL`: prints a channel's messages live, one JSON line each. Built on
/// `SwitchboardClient`: it reconnects by itself and resumes by offset, so nothing is missed
/// or printed twice across drops and server restarts.
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
        guard let serverURL = URL(string: base) else { throw ValidationError("--url must be a URL, not \"\(base)\"") }
        let credential = token ?? environment["SWITCHBOARD_TOKEN"]
        var configuration = ClientConfiguration()
        configuration.logger.logLevel = .critical
        let provider: (@Sendable () async throws -> String?)? = credential.map { token in { @Sendable in token } }
        let client = SwitchboardClient(url: serverURL, token: provider, configuration: configuration)
        do {
            let subscription = try await client.subscribe(channel, since: since.flatMap { Position($0) })
            for try await event in subscription {
                switch event {
                case .message(let message):
                    FileHandle.standardOutput.write(Data((Self.line(message) + "\n").utf8))
                case .reset(let position):
                    Self.warn("could not resume (history gone or epoch changed); continuing from \(position)")
                case .join, .leave:
                    continue
                }
            }
        } catch let error as SwitchboardClientError {
            switch error {
            case .refused(let refusal): Self.warn("subscribe failed: \(refusal)")
            case .stopped(let reason): Self.warn("closed by the server (\(reason)); not reconnecting")
            default: Self.warn("\(error)")
            }
            throw ExitCode.failure
        }
    }

    /// The message as the server pushes it: `{"channel","data","epoch","offset","type"}`.
    static func line(_ message: ReceivedMessage) -> String {
        JSONValue.object([
            "type": "message", "channel": .string(message.channel), "epoch": .string(message.position.epoch),
            "offset": .int(message.position.offset), "data": message.data,
        ]).serialized
    }

    static func warn(_ text: String) {
        FileHandle.standardError.write(Data("switchboard tail: \(text)\n".utf8))
    }
}
