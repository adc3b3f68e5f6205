import Foundation
import Testing
import SwitchboardCore

/// The `switchboard` executable, run as a user runs it.
@Suite("Command line")
struct CLITests {
    static var binary: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("switchboard").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return FileManager.default.currentDirectoryPath + "/.build/debug/switchboard"
    }

    struct Result {
        var status: Int32
        var stderr: String
        var stdout: String
    }

    func run(_ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(20)) async throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        // Files, not pipes: a child writing more than a pipe holds would wait for a reader
        // that only reads after it exits.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sb-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let errURL = dir.appendingPathComponent("stderr")
        let outURL = dir.appendingPathComponent("stdout")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        try process.run()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning {
            process.terminate()
            try await Task.sleep(for: .seconds(2))
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        let text = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        let output = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        return Result(status: process.terminationStatus, stderr: text, stdout: output)
    }

    @Test("wrong options and unreadable config files exit non-zero with a one-line error")
    func badOptions() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build it first: swift build")
        let missing = try await run(["serve", "--config", "/nonexistent/config.yaml"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("cannot read config file /nonexistent/config.yaml"))
        #expect(missing.stderr.split(separator: "\n").count == 1)

        let public_ = try await run(["serve", "--host", "0.0.0.0", "--port", "0"])
        #expect(public_.status != 0)
        #expect(public_.stderr.contains("--insecure"))

        let badDatabase = try await run(["serve", "--database", "mysql://x"])
        #expect(badDatabase.status != 0)
        #expect(badDatabase.stderr.contains("--database"))

        let envPort = try await run(["serve"], environment: ["SWITCHBOARD_PORT": "eighty"])
        #expect(envPort.status != 0)
        #expect(envPort.stderr.contains("SWITCHBOARD_PORT"))

        let unknown = try await run(["serve", "--no-such-flag"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("--no-such-flag"))
        #expect(unknown.stderr.split(separator: "\n").count == 1)
    }

    @Test("token mints a JWT that the server accepts for exactly its grants")
    func mintToken() async throws {
        let minted = try await run(
            ["token", "--sub", "alice", "--channels", "chat:*", "--publish", "chat:*", "--ttl", "1h", "--info", #"{"name": "Alice"}"#],
            environment: ["SWITCHBOARD_JWT_SECRET": Tokens.secret]
        )
        #expect(minted.status == 0, "\(minted.stderr)")
        let token = minted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.split(separator: ".").count == 3)
        try await TestServer.with(configure: SecurityTests.secured) { server in
            let client = try await WSClient.connect(server, headers: ["Authorization": "Bearer \(token)"])
            #expect(try await client.command("subscribe", ["channel": "chat:x"])["result"]?["channel"] == "chat:x")
            #expect(try await client.command("publish", ["channel": "chat:x", "data": 1])["result"]?["offset"] == 1)
            #expect(try await client.command("subscribe", ["channel": "chatroom:x"])["error"]?["code"] == "forbidden")
            _ = await client.close()
        }
        let short = try await run(["token", "--sub", "alice"], environment: ["SWITCHBOARD_JWT_SECRET": "short"])
        #expect(short.status != 0)
        #expect(short.stderr.contains("at least 32"))
    }

    @Test("serve --port 0 logs the bound address")
    func servePortZero() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sb-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--port", "0", "--database", "sqlite:\(dir.path)/db.sqlite"]
        let err = Pipe()
        process.standardError = err
        // Read as it comes, never blocking: a silent server must fail the test, not hang it.
        let reader = LineReader(err.fileHandleForReading)
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        var log = ""
        let deadline = ContinuousClock.now + .seconds(20)
        while !log.contains("development mode") && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            log = reader.text()
        }
        let match = log.range(of: #"http://127\.0\.0\.1:(\d+)"#, options: .regularExpression)
        #expect(match != nil, "log: \(log)")
        #expect(log.contains("development mode"))
        #expect(FileManager.default.fileExists(atPath: "\(dir.path)/db.sqlite"))
    }

    @Test("SIGTERM drains: WebSockets close with 1012, streams and polls end, the process exits, and answered writes are kept")
    func gracefulDrain() async throws {
        let port = try FreePort.find()
        let path = TestServer.temporaryDatabase()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: Self.binary)
        server.arguments = ["serve", "--port", "\(port)", "--database", "sqlite:\(path)", "--drain-timeout", "5"]
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        let running = TestServer(port: port, databasePath: path, node: nil)
        try await Self.waitForHealth(port: port)

        let client = try await WSClient.connect(running)
        _ = try await client.command("subscribe", ["channel": "chat:drain"])
        let stream = try RawEventStream(port: port, path: "/v1/sse?channels=chat:drain")
        #expect(stream.next()?.event == "subscribed")
        let written = try await HTTP.with(running) { http in
            try await http.put("/v1/collections/orders/o1", #"{"qty": 3}"#)
        }
        #expect(written.status == 201)
        let poll = Task { try await HTTP.with(running) { http in try await http.get("/v1/poll?channel=chat:drain&timeout=60") } }
        try await Task.sleep(for: .milliseconds(200))

        let signalled = ContinuousClock.now
        kill(server.processIdentifier, SIGTERM)
        let wsClose = await client.closeCode()
        #expect(wsClose == 1012, "got \(String(describing: wsClose))")
        var sawClose = false
        while let event = stream.next(timeout: .seconds(10)) {
            if event.event == "close" { sawClose = event.json?["code"] == 1012 }
        }
        #expect(sawClose)
        #expect(try await poll.value.status == 200)
        while server.isRunning && ContinuousClock.now - signalled < .seconds(15) { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!server.isRunning)
        #expect(server.terminationStatus == 0)
        #expect(ContinuousClock.now - signalled < .seconds(10))

        // The write answered before the signal is there after a restart.
        try await TestServer.with(databasePath: path) { again in
            let record = try await HTTP.with(again) { http in try await http.get("/v1/collections/orders/o1") }
            #expect(record.json["data"] == ["qty": 3])
        }
    }

    static func waitForHealth(port: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if let fd = try? RawSocket.connect(port: port) {
                RawSocket.close(fd)
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("server did not start on \(port)")
    }

    @Test("tail prints each message once, in order, across a server restart")
    func tailResumes() async throws {
        let port = try FreePort.find()
        let path = TestServer.temporaryDatabase()
        let output = Pipe()
        let tail = Process()
        tail.executableURL = URL(fileURLWithPath: Self.binary)
        tail.arguments = ["tail", "chat:tail", "--url", "http://127.0.0.1:\(port)"]
        tail.standardOutput = output
        tail.standardError = FileHandle.nullDevice
        defer { if tail.isRunning { tail.terminate() } }
        let reader = LineReader(output.fileHandleForReading)

        try await TestServer.with(databasePath: path, configure: { $0.port = port }) { server in
            try tail.run()
            // Wait until tail has subscribed.
            let deadline = ContinuousClock.now + .seconds(20)
            while server.node.hub.subscriberCount(channel: "chat:tail") == 0 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            try await HTTP.with(server) { http in
                for i in 1...3 { try await http.publish("chat:tail", .int(Int64(i))) }
            }
            _ = try await reader.lines(3)
        }
        // The server is gone; on the same file and port, publish before tail reconnects.
        try await TestServer.with(databasePath: path, configure: { $0.port = port }) { server in
            try await HTTP.with(server) { http in
                for i in 4...5 { try await http.publish("chat:tail", .int(Int64(i))) }
            }
            let lines = try await reader.lines(5)
            let frames = try lines.map { try JSONValue.parse($0) }
            #expect(frames.map { $0["offset"] } == [1, 2, 3, 4, 5])
            #expect(frames.map { $0["data"] } == [1, 2, 3, 4, 5])
            #expect(frames.allSatisfy { $0["channel"] == "chat:tail" })
        }
    }
}

enum FreePort {
    /// A port that was free a moment ago (bind to 0, read it, close).
    static func find() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else { throw TestFailure("bind failed") }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Accumulates a process's output and hands it out as lines.
final class LineReader: @unchecked Sendable {
    private let handle: FileHandle
    private var buffer = ""
    private var all: [String] = []
    private let lock = NSLock()

    init(_ handle: FileHandle) {
        self.handle = handle
        handle.readabilityHandler = { [weak self] h in
            let data = h.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.lock()
            self.buffer += String(decoding: data, as: UTF8.self)
            while let newline = self.buffer.firstIndex(of: "\n") {
                self.all.append(String(self.buffer[..<newline]))
                self.buffer = String(self.buffer[self.buffer.index(after: newline)...])
            }
            self.lock.unlock()
        }
    }

    /// Everything read so far.
    func text() -> String {
        lock.withLock { (all + [buffer]).joined(separator: "\n") }
    }

    /// All lines so far, once there are at least `count` (waits up to 20 s).
    func lines(_ count: Int) async throws -> [String] {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let snapshot = lock.withLock { all }
            if snapshot.count >= count { return snapshot }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("timed out waiting for \(count) lines")
    }
}
