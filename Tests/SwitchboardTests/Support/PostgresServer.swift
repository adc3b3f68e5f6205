import Foundation
import Synchronization

/// A real PostgreSQL server for the cluster tests: `initdb` and `pg_ctl` from Debian's
/// packages (as user postgres when the tests run as root), in a temp dir, on a free port.
/// One per test process, started on first use and stopped at exit; each test gets a new
/// database in it. `SWITCHBOARD_PG_BIN` names another directory of PostgreSQL binaries.
final class PostgresServer: Sendable {
    let port: Int
    let directory: String
    private let bin: String

    private static let shared = Mutex<Task<PostgresServer, any Error>?>(nil)
    private static let databases = Atomic<Int>(0)

    /// The test process's server.
    static func start() async throws -> PostgresServer {
        let task = shared.withLock { task in
            if let task { return task }
            let started = Task { try await PostgresServer() }
            task = started
            return started
        }
        return try await task.value
    }

    /// A new, empty database: its `postgres://` URL.
    static func newDatabase() async throws -> String {
        let server = try await start()
        let name = "switchboard_\(ProcessInfo.processInfo.processIdentifier)_\(databases.add(1, ordering: .relaxed).newValue)"
        try server.psql("CREATE DATABASE \(name)")
        return server.url(database: name)
    }

    func url(database: String) -> String { "postgres://postgres@127.0.0.1:\(port)/\(database)" }

    private init() async throws {
        bin = try Self.binaries()
        port = try FreePort.find()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 { try Self.shell(["chown", "postgres", directory]) }
        try asPostgres(["\(bin)/initdb", "-D", "\(directory)/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        try startServer()
        PostgresServer.stopAtExit(self)
    }

    /// Starts the server (again, after `stop`), and waits until it takes connections.
    func startServer() throws {
        try asPostgres([
            "\(bin)/pg_ctl", "-D", "\(directory)/data", "-l", "\(directory)/log", "-w", "-t", "30", "start", "-o",
            "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
        ])
    }

    /// Stops the server at once: every connection is cut, as when the database host fails.
    func stop() throws {
        try asPostgres(["\(bin)/pg_ctl", "-D", "\(directory)/data", "-m", "immediate", "-w", "stop"])
    }

    func psql(_ sql: String, database: String = "postgres") throws {
        try Self.shell(["\(bin)/psql", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", database, "-q", "-c", sql])
    }

    /// One value from a query, as text.
    func value(_ sql: String, database: String) throws -> String {
        try Self.shell(["\(bin)/psql", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", database, "-At", "-c", sql])
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func asPostgres(_ command: [String]) throws {
        if getuid() == 0 {
            try Self.shell(["runuser", "-u", "postgres", "--"] + command)
        } else {
            try Self.shell(command)
        }
    }

    private static func binaries() throws -> String {
        if let dir = ProcessInfo.processInfo.environment["SWITCHBOARD_PG_BIN"] { return dir }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        if let newest = versions.last, FileManager.default.isExecutableFile(atPath: "\(root)/\(newest)/bin/initdb") {
            return "\(root)/\(newest)/bin"
        }
        throw TestFailure("PostgreSQL is not installed (apt-get install postgresql), or set SWITCHBOARD_PG_BIN")
    }

    /// Runs a command to its end and returns its output. posix_spawn and waitpid, not
    /// Foundation's Process, whose exit monitoring can hang when a child leaves daemons behind.
    @discardableResult
    static func shell(_ command: [String]) throws -> String {
        var pipe: [Int32] = [0, 0]
        guard Glibc.pipe(&pipe) == 0 else { throw TestFailure("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipe[1], 2)
        posix_spawn_file_actions_addclose(&actions, pipe[0])
        let argv = (["/usr/bin/env"] + command).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/usr/bin/env", &actions, nil, argv, environ)
        Glibc.close(pipe[1])
        guard spawned == 0 else {
            Glibc.close(pipe[0])
            throw TestFailure("cannot run \(command[0]): \(spawned)")
        }
        // Read until the command exits (not until EOF: a daemon it started may hold the pipe).
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        _ = fcntl(pipe[0], F_SETFL, fcntl(pipe[0], F_GETFL) | O_NONBLOCK)
        var status: Int32 = 0
        while true {
            let n = read(pipe[0], &buffer, buffer.count)
            if n > 0 { output += buffer[0..<n]; continue }
            if waitpid(pid, &status, WNOHANG) == pid { break }
            usleep(5000)
        }
        while case let n = read(pipe[0], &buffer, buffer.count), n > 0 { output += buffer[0..<n] }
        Glibc.close(pipe[0])
        let text = String(decoding: output, as: UTF8.self)
        guard status == 0 else {
            throw TestFailure("\(command.joined(separator: " ")) failed (\(status)): \(text)")
        }
        return text
    }

    private static let atExit = Mutex<PostgresServer?>(nil)

    private static func stopAtExit(_ server: PostgresServer) {
        atExit.withLock { $0 = server }
        atexit {
            PostgresServer.atExit.withLock { $0 }.map { try? $0.stop() }
        }
    }
}
