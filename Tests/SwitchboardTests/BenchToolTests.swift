import Foundation
import Testing
import SwitchboardBench

/// `switchboard bench` against a real server: its counts must add up, so that the numbers
/// it reports for a deployment can be trusted.
@Suite("switchboard bench")
struct BenchToolTests {
    /// The tool aimed at a test server, on one event loop, without a progress line.
    static func options(_ server: TestServer, channel: String = "bench") throws -> BenchOptions {
        try BenchOptions(url: "http://127.0.0.1:\(server.port)", token: nil, apiKey: nil, channel: channel, threads: 1, quiet: true)
    }

    @Test("fanout: every published message reaches every subscriber once, in order, with a latency")
    func fanoutCountsAddUp() async throws {
        try await TestServer.with { server in
            let options = try Self.options(server)
            let config = FanoutConfig(
                subscribers: 20, rate: 40, size: 64, duration: 1, warmup: 0.2, grace: 1,
                publishers: 2, connectRate: 0, connectConcurrency: 20
            )
            let result = try await FanoutScenario.run(options, config)
            #expect(result.connected == 20)
            #expect(result.published > 0)
            #expect(result.expected == result.published * 20)
            #expect(result.delivered == result.expected)
            #expect(result.lost == 0 && result.gaps == 0 && result.reorders == 0)
            #expect(result.p99Ms > 0 && result.p50Ms <= result.p99Ms)
            let json = try JSONSerialization.jsonObject(with: Data(try result.jsonLine().utf8)) as? [String: Any]
            #expect(json?["scenario"] as? String == "fanout")
            #expect(json?["delivered"] as? Int == result.delivered)
        }
    }

    @Test("fan-out to 300 subscribers (writes gathered by load, one entry per event loop): nothing lost, repeated or reordered")
    func batchedFanout() async throws {
        try await TestServer.with(configure: { TestServer.manyClients(&$0) }) { server in
            let options = try Self.options(server)
            let config = FanoutConfig(
                subscribers: 300, rate: 200, size: 64, duration: 1, warmup: 0.2, grace: 2,
                publishers: 4, connectRate: 0, connectConcurrency: 50
            )
            let result = try await FanoutScenario.run(options, config)
            #expect(result.connected == 300)
            #expect(result.published > 50)
            #expect(result.delivered == result.expected)
            #expect(result.lost == 0 && result.gaps == 0 && result.reorders == 0)
        }
    }

    @Test("connections: idle connections are all live after the hold")
    func connectionsAreLive() async throws {
        try await TestServer.with(configure: TestServer.manyClients) { server in
            let options = try Self.options(server)
            let config = ConnectionsConfig(count: 200, rate: 0, concurrency: 50, hold: 0.5, serverPID: nil, pingTimeout: 5)
            let result = try await ConnectionsScenario.run(options, config)
            #expect(result.opened == 200)
            #expect(result.failed == 0)
            #expect(result.live == 200)
        }
    }

    @Test("a server that refuses publishes makes the run fail with the reason")
    func refusedPublishesFail() async throws {
        try await TestServer.with { server in
            let options = try Self.options(server, channel: "sys:bench")
            let config = FanoutConfig(
                subscribers: 2, rate: 50, size: 64, duration: 1, warmup: 0, grace: 0.5,
                publishers: 1, connectRate: 0, connectConcurrency: 2
            )
            await #expect(throws: (any Error).self) { try await FanoutScenario.run(options, config) }
        }
    }
}
