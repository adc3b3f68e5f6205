import Foundation
import Synchronization
import SwitchboardServer

/// Several nodes on one new PostgreSQL database (SPEC section 7), in this process.
enum TestCluster {
    /// Runs `body` with `count` nodes on a fresh database; they stop when it returns.
    static func with<T: Sendable>(
        nodes count: Int = 3,
        configure: @escaping @Sendable (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable ([TestServer]) async throws -> T
    ) async throws -> T {
        let url = try await PostgresServer.newDatabase()
        return try await start(count, url: url, configure: configure, running: [], body)
    }

    private static func start<T: Sendable>(
        _ remaining: Int, url: String, configure: @escaping @Sendable (inout ServerConfiguration) -> Void,
        running: [TestServer], _ body: @Sendable ([TestServer]) async throws -> T
    ) async throws -> T {
        guard remaining > 0 else { return try await body(running) }
        return try await TestServer.with(database: url, configure: configure) { node in
            try await start(remaining - 1, url: url, configure: configure, running: running + [node], body)
        }
    }
}

/// A node as its own `switchboard serve` process, so that a test can kill it with SIGKILL
/// and start it again on the same port.
final class NodeProcess: Sendable {
    let port: Int
    let database: String
    private let configPath: String?
    private let process = Mutex<Spawned?>(nil)

    var baseURL: String { "http://127.0.0.1:\(port)" }

    init(database: String, config: String? = nil) throws {
        port = try FreePort.find()
        self.database = database
        if let config {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-node-\(UUID().uuidString).yaml").path
            try config.write(toFile: path, atomically: true, encoding: .utf8)
            configPath = path
        } else {
            configPath = nil
        }
    }

    /// Starts the process and waits until it answers `/healthz`.
    func start() async throws {
        let process = try Spawned(
            [CLITests.binary, "serve", "--port", String(port), "--database", database] + (configPath.map { ["--config", $0] } ?? [])
        )
        self.process.withLock { $0 = process }
        try await CLITests.waitForHealth(port: port)
    }

    /// SIGKILL: no drain, no goodbye, as when a machine dies.
    func kill() {
        guard let process = process.withLock({ p in defer { p = nil }; return p }) else { return }
        process.stop(signal: SIGKILL)
    }
}

/// A child process started with posix_spawn and stopped with kill and waitpid: Foundation's
/// `Process` can miss a child's exit here and wait forever.
final class Spawned: Sendable {
    let pid: pid_t

    /// Starts `arguments[0]` (a path) with output to /dev/null.
    init(_ arguments: [String]) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
        guard result == 0 else { throw TestFailure("cannot start \(arguments[0]): \(result)") }
        self.pid = pid
    }

    /// Sends `signal` and waits (up to 10 s) until the process is gone.
    func stop(signal: Int32 = SIGTERM) {
        guard kill(pid, signal) == 0 else { return }
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            usleep(2_000)
        }
    }

    deinit { stop(signal: SIGKILL) }
}

/// A count several tasks add to.
final class Tally: Sendable {
    private let value = Mutex(0)
    func add() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}
