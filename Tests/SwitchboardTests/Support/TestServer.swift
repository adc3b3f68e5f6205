import Foundation
import Hummingbird
import Logging
import Synchronization
import SwitchboardCore
import SwitchboardServer

/// A real Switchboard server on 127.0.0.1, port 0, over a SQLite file in a temp dir (or
/// the PostgreSQL database it is given).
struct TestServer: Sendable {
    let port: Int
    let databasePath: String
    /// The server's node when it runs in this process.
    let node: Node!

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var wsURL: String { "ws://127.0.0.1:\(port)/v1/ws" }

    /// Per-IP limits apply to loopback too (SPEC section 7): a test that opens hundreds of
    /// connections from 127.0.0.1 at once raises them, as a load generator's config would.
    static func manyClients(_ configuration: inout ServerConfiguration) {
        configuration.limits.connectionsPerIP = 100_000
        configuration.limits.handshakesPerSecond = 100_000
    }

    static func temporaryDatabase() -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-tests-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("test.sqlite").path
    }

    /// Runs `body` against a fresh server; the server stops when it returns.
    static func with<T: Sendable>(
        databasePath: String = temporaryDatabase(),
        database: String? = nil,
        configure: (inout ServerConfiguration) -> Void = { _ in },
        logs: LogSink? = nil,
        _ body: @Sendable (TestServer) async throws -> T
    ) async throws -> T {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.database = database ?? "sqlite:\(databasePath)"
        configure(&configuration)
        var logger = logs.map { sink in Logger(label: "switchboard-test", factory: { _ in sink.handler }) } ?? Logger(label: "switchboard-test")
        logger.logLevel = logs != nil ? .trace : ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        let server = try await SwitchboardServer(configuration: configuration, logger: logger)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let application = try server.application { port in portContinuation.yield(port) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await application.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw TestFailure("server did not start") }
            let running = TestServer(port: port, databasePath: databasePath, node: server.node)
            do {
                let result = try await body(running)
                group.cancelAll()
                return result
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }
}

/// Collects every log line of a server, to check what it does and does not say.
final class LogSink: Sendable {
    private let lines = Mutex<[String]>([])

    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    var handler: any LogHandler { Handler(sink: self) }

    fileprivate func append(_ line: String) { lines.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let sink: LogSink
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.append("\(event.level) \(event.message) \(all)")
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
