/// `latency`: fan-out at a low rate to fewer subscribers, so that what it measures is the
/// time from a REST publish to its WebSocket push, not queueing under load.
public enum LatencyScenario {
    public static func run(_ options: BenchOptions, _ config: FanoutConfig) async throws -> FanoutResult {
        try await FanoutScenario.run(options, config, scenario: "latency")
    }
}
