import Foundation
import Testing
import SwitchboardCore
import SwitchboardServer

@Suite("Durability")
struct RestartTests {
    @Test("a restart on the same file keeps records, history, epochs and offsets")
    func restartKeepsEverything() async throws {
        let path = TestServer.temporaryDatabase()
        let before = try await TestServer.with(databasePath: path) { server in
            try await HTTP.with(server) { http in
                try await http.put("/v1/collections/stocks/AAPL", #"{"price": 1}"#)
                try await http.put("/v1/collections/stocks/AAPL", #"{"price": 2}"#)
                for i in 1...5 { try await http.publish("chat:keep", .int(Int64(i))) }
                let history = try await http.get("/v1/channels/chat:keep/messages")
                let feed = try await http.get("/v1/collections/stocks")
                return (history.json, feed.json["epoch"]!)
            }
        }
        try await TestServer.with(databasePath: path) { server in
            try await HTTP.with(server) { http in
                let record = try await http.get("/v1/collections/stocks/AAPL")
                #expect(record.json["version"] == 2)
                #expect(record.json["data"] == ["price": 2])
                let history = try await http.get("/v1/channels/chat:keep/messages")
                #expect(history.json == before.0)
                #expect(history.json["messages"]?.arrayValue?.map { $0["data"] } == [1, 2, 3, 4, 5])
                // Offsets continue in the same epoch.
                #expect(try await http.publish("chat:keep", "six") == 6)
                let written = try await http.put("/v1/collections/stocks/AAPL", #"{"price": 3}"#)
                #expect(written.json["version"] == 3)
                let feed = try await http.get("/v1/collections/stocks")
                #expect(feed.json["epoch"] == before.1)
                #expect(feed.json["offset"] == 3)

                // A client holding a position from before the restart resumes without loss.
                let client = try await WSClient.connect(server)
                let reply = try await client.command("subscribe", ["channel": "chat:keep", "since": ["epoch": history.json["epoch"]!, "offset": 5]])
                #expect(reply["result"]?["recovered"] == true)
                #expect(try await client.messages(1).first?["data"] == "six")
                _ = await client.close()
            }
        }
    }
}

@Suite("Configuration")
struct ConfigurationTests {
    private func write(_ text: String, ext: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-\(UUID().uuidString).\(ext)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("the SPEC's YAML config loads: origins, limits, heartbeat, namespaces")
    func specYAML() throws {
        let path = try write("""
            allowed_origins: ["https://app.example.com"]
            limits: {message_bytes: 65536, subscriptions: 128, commands_per_second: 100,
                     command_burst: 200, queue_bytes: 1048576, connections_per_ip: 1000}
            heartbeat_seconds: 20
            namespaces:            # "" is the default namespace; collection is the change feeds
              "":      {anonymous: true, client_publish: false, presence: false, history_size: 100, history_ttl: 3600}
              chat:    {anonymous: true, client_publish: true, presence: true, history_size: 200}
              prices:  {anonymous: true, client_publish: false, history_size: 1000}
              collection: {anonymous: true, history_size: 10000, history_ttl: 86400}
            """, ext: "yaml")
        var config = ServerConfiguration()
        try ConfigFile.load(path: path, into: &config)
        #expect(config.allowedOrigins == ["https://app.example.com"])
        #expect(config.heartbeatSeconds == 20)
        #expect(config.limits.queueBytes == 1_048_576)
        #expect(config.namespaces.policy(forChannel: "chat:lobby").clientPublish)
        #expect(config.namespaces.policy(forChannel: "prices:AAPL").historySize == 1000)
        #expect(config.namespaces.policy(forChannel: "unknown:x").historySize == 100)
        #expect(config.namespaces.policy(forChannel: "collection:stocks").historyTTL == 86400)
    }

    @Test("JSON config works the same way")
    func jsonConfig() throws {
        let path = try write(#"{"port": 9999, "compression": false, "namespaces": {"room": {"client_publish": true, "history_size": 5}}}"#, ext: "json")
        var config = ServerConfiguration()
        #expect(config.compression)
        try ConfigFile.load(path: path, into: &config)
        #expect(config.port == 9999)
        #expect(!config.compression)
        #expect(config.namespaces.policy(forChannel: "room:1").clientPublish)
        // The change feeds keep a policy even when the file does not name them.
        #expect(config.namespaces.policy(forChannel: "collection:x").historySize == 10000)
    }

    @Test("an unknown key, a wrong type or an unreadable file is one clear error")
    func badConfig() throws {
        var config = ServerConfiguration()
        let typo = try write("heartbeat_second: 5\n", ext: "yaml")
        #expect(throws: ConfigurationError.self) { try ConfigFile.load(path: typo, into: &config) }
        do { try ConfigFile.load(path: typo, into: &config) } catch { #expect("\(error)".contains("heartbeat_second")) }
        let wrongType = try write("limits: {subscriptions: many}\n", ext: "yaml")
        do {
            try ConfigFile.load(path: wrongType, into: &config)
            Issue.record("accepted a wrong type")
        } catch { #expect("\(error)".contains("limits.subscriptions")) }
        let negative = try write("heartbeat_seconds: -1\n", ext: "yaml")
        do {
            try ConfigFile.load(path: negative, into: &config)
            Issue.record("accepted a negative heartbeat")
        } catch { #expect("\(error)".contains("heartbeat_seconds")) }
        // A key that is gone says what replaced it.
        let gone = try write("flush_interval_ms: 20\n", ext: "yaml")
        do {
            try ConfigFile.load(path: gone, into: &config)
            Issue.record("accepted flush_interval_ms")
        } catch { #expect("\(error)".contains("flush_interval_ms is gone")) }
        do {
            try ConfigFile.load(path: "/nonexistent/switchboard.yaml", into: &config)
            Issue.record("accepted a missing file")
        } catch { #expect("\(error)".contains("cannot read")) }
    }

    @Test("development mode refuses a public address without --insecure")
    func developmentModeLoopbackOnly() throws {
        var config = ServerConfiguration()
        config.host = "0.0.0.0"
        #expect(throws: ConfigurationError.self) { try config.validate() }
        config.insecure = true
        try config.validate()
        config.host = "127.0.0.1"
        config.insecure = false
        try config.validate()
    }
}

@Suite("History age")
struct HistoryAgeTests {
    @Test("messages past history_ttl are not served and a position before them does not recover")
    func ttl() async throws {
        try await TestServer.with(configure: { config in
            config.namespaces = Namespaces(policies: ["brief": NamespacePolicy(historySize: 100, historyTTL: 1)])
        }) { server in
            try await HTTP.with(server) { http in
                try await http.publish("brief:x", "old")
                let epoch = try #require(try await http.get("/v1/channels/brief:x/messages").json["epoch"]?.stringValue)
                try await Task.sleep(for: .milliseconds(1100))
                try await http.publish("brief:x", "new")
                let history = try await http.get("/v1/channels/brief:x/messages")
                #expect(history.json["messages"]?.arrayValue?.map { $0["data"] } == ["new"])
                let resumed = try await http.get("/v1/channels/brief:x/messages?since=\(epoch):0")
                #expect(resumed.json["recovered"] == false)
                // The pruner deletes what expired.
                #expect(try await server.node.store.pruneExpired(nowMillis: Timestamp.nowMilliseconds()) == 1)
            }
        }
    }
}
