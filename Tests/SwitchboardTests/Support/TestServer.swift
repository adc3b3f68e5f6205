import Foundation
import Hummingbird
import Logging
import SwitchboardCore
import SwitchboardServer

/// A real Switchboard server on 127.0.0.1, port 0, over a SQLite file in a temp dir.
struct TestServer: Sendable {
    let port: Int
    let databasePath: String
    let broker: Broker

    var baseURL: String { "http://127.0.0.1:\(port)" }
    var wsURL: String { "ws://127.0.0.1:\(port)/v1/ws" }

    static func temporaryDatabase() -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-tests-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("test.sqlite").path
    }

    /// Runs `body` against a fresh server; the server stops when it returns.
    static func with<T: Sendable>(
        databasePath: String = temporaryDatabase(),
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (TestServer) async throws -> T
    ) async throws -> T {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.database = "sqlite:\(databasePath)"
        configure(&configuration)
        var logger = Logger(label: "switchboard-test")
        logger.logLevel = ProcessInfo.processInfo.environment["SWITCHBOARD_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
        let server = try await SwitchboardServer(configuration: configuration, logger: logger)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let application = try server.application { port in portContinuation.yield(port) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await application.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw TestFailure("server did not start") }
            let running = TestServer(port: port, databasePath: databasePath, broker: server.broker)
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

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
