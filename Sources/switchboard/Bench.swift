import ArgumentParser
import Foundation
import SwitchboardBench

/// `bench`: load-tests a Switchboard deployment. Progress goes to stderr, the result to stdout
/// as a few lines and then one JSON line (only that with `--json`).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test a Switchboard server: fan-out throughput, publish-to-push latency, idle connections.",
        subcommands: [Fanout.self, Latency.self, Connections.self]
    )
}

extension Bench {
    /// Where and as whom, and how to report: every scenario's options.
    struct CommonOptions: ParsableArguments {
        @Option(help: ArgumentHelp(
            "The server's base URL, http only (default http://127.0.0.1:8080). Repeat it for the nodes of a cluster: connections and publishers take them in turn. Env: SWITCHBOARD_URL (comma-separated).",
            valueName: "url"
        ))
        var url: [String] = []

        @Option(help: ArgumentHelp(
            "Where publishers connect, if not the --url ones (repeatable): publish on one node and subscribe on others to measure delivery across a cluster.",
            valueName: "url"
        ))
        var publishUrl: [String] = []

        @Option(help: "A JWT, sent as Authorization: Bearer on handshakes and publishes.")
        var token: String?

        @Option(help: "An API key, sent as X-API-Key. Env: SWITCHBOARD_API_KEY.")
        var apiKey: String?

        @Option(help: "The channel to subscribe and publish to.")
        var channel = "bench"

        @Option(help: "Event loop threads (default: one per core).")
        var threads: Int?

        @Flag(help: "Print only the JSON result line on stdout.")
        var json = false

        @Flag(help: "No progress line on stderr.")
        var quiet = false

        func benchOptions() throws -> BenchOptions {
            let environment = ProcessInfo.processInfo.environment
            return try BenchOptions(
                urls: !url.isEmpty ? url : environment["SWITCHBOARD_URL"].map { $0.split(separator: ",").map(String.init) } ?? ["http://127.0.0.1:8080"],
                publishURLs: publishUrl,
                token: token,
                apiKey: apiKey ?? environment["SWITCHBOARD_API_KEY"],
                channel: channel,
                threads: threads,
                quiet: quiet
            )
        }

        func emit(_ result: some BenchResult) throws {
            if !json { result.summary.forEach { print($0) } }
            print(try result.jsonLine())
        }
    }

    /// What `fanout` and `latency` share, with the same defaults.
    struct PublishOptions: ParsableArguments {
        @Option(help: "Bytes of each message's data.")
        var size = 64

        @Option(help: "Seconds of publishing before measuring starts.")
        var warmup = 1.0

        @Option(help: "Seconds to wait at the end for messages on their way.")
        var grace = 3.0

        @Option(help: "Keep-alive HTTP connections publishing, one request in flight each.")
        var publishers = 4

        @Option(help: "Handshakes a second while connecting subscribers, 0 for no limit.")
        var connectRate = 2000

        @Option(help: "Handshakes in flight at once.")
        var connectConcurrency = 200

        func validate() throws {
            guard (0...60_000).contains(size) else { throw ValidationError("--size must be 0 to 60000 bytes") }
            guard warmup >= 0, grace >= 0 else { throw ValidationError("--warmup and --grace cannot be negative") }
            guard publishers >= 1 else { throw ValidationError("--publishers must be at least 1") }
            guard connectRate >= 0, connectConcurrency >= 1 else {
                throw ValidationError("--connect-rate cannot be negative and --connect-concurrency must be at least 1")
            }
        }

        func config(subscribers: Int, rate: Double, duration: Double) -> FanoutConfig {
            FanoutConfig(
                subscribers: subscribers, rate: rate, size: size, duration: duration, warmup: warmup, grace: grace,
                publishers: publishers, connectRate: connectRate, connectConcurrency: connectConcurrency
            )
        }
    }

    struct Fanout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish over REST to many subscribers: delivered msg/s, loss, gaps and latency."
        )

        @OptionGroup var common: CommonOptions
        @OptionGroup var publishing: PublishOptions

        @Option(help: "Subscriber connections.")
        var subscribers = 1000

        @Option(help: "Messages a second published.")
        var rate = 100.0

        @Option(help: "Seconds measured.")
        var duration = 10.0

        func validate() throws {
            try validateLoad(subscribers: subscribers, rate: rate, duration: duration)
        }

        func run() async throws {
            let options = try common.benchOptions()
            let config = publishing.config(subscribers: subscribers, rate: rate, duration: duration)
            try common.emit(try await FanoutScenario.run(options, config))
        }
    }

    struct Latency: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fan-out at a low rate, for the latency from a REST publish to its WebSocket push."
        )

        @OptionGroup var common: CommonOptions
        @OptionGroup var publishing: PublishOptions

        @Option(help: "Subscriber connections.")
        var subscribers = 100

        @Option(help: "Messages a second published.")
        var rate = 50.0

        @Option(help: "Seconds measured.")
        var duration = 15.0

        func validate() throws {
            try validateLoad(subscribers: subscribers, rate: rate, duration: duration)
        }

        func run() async throws {
            let options = try common.benchOptions()
            let config = publishing.config(subscribers: subscribers, rate: rate, duration: duration)
            try common.emit(try await LatencyScenario.run(options, config))
        }
    }

    struct Connections: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open many idle subscribed connections, hold them, then check each still answers."
        )

        @OptionGroup var common: CommonOptions

        @Option(help: "Connections to open.")
        var count = 10_000

        @Option(help: "Handshakes a second, 0 for no limit.")
        var rate = 2000

        @Option(help: "Handshakes in flight at once.")
        var concurrency = 500

        @Option(help: "Seconds to hold the connections before checking them.")
        var hold = 5.0

        @Option(help: "Seconds each connection has to answer the final ping.")
        var pingTimeout = 10.0

        @Option(help: "A local server's process id: report its memory (VmRSS) before and after.")
        var serverPid: Int32?

        func validate() throws {
            guard count >= 1 else { throw ValidationError("--count must be at least 1") }
            guard rate >= 0, concurrency >= 1 else {
                throw ValidationError("--rate cannot be negative and --concurrency must be at least 1")
            }
            guard hold >= 0, pingTimeout > 0 else { throw ValidationError("--hold cannot be negative and --ping-timeout must be positive") }
        }

        func run() async throws {
            let options = try common.benchOptions()
            let config = ConnectionsConfig(
                count: count, rate: rate, concurrency: concurrency, hold: hold, serverPID: serverPid, pingTimeout: pingTimeout
            )
            try common.emit(try await ConnectionsScenario.run(options, config))
        }
    }
}

private func validateLoad(subscribers: Int, rate: Double, duration: Double) throws {
    guard subscribers >= 1 else { throw ValidationError("--subscribers must be at least 1") }
    guard rate > 0, rate <= 1_000_000 else { throw ValidationError("--rate must be above 0 and at most 1000000") }
    guard duration > 0 else { throw ValidationError("--duration must be positive") }
}
