import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `switchboard simulate stocks`: PUTs random-walk prices into collection `stocks` through
/// the REST API, so the stock ticker demo moves.
struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Drive a demo: 'stocks' PUTs random-walk prices into collection stocks.")

    @Argument(help: "What to simulate: stocks.")
    var scenario: String

    @Option(help: "Writes a second (default 20).")
    var rate: Double = 20

    @Option(help: "Comma-separated symbols.")
    var symbols: String = "AAPL,MSFT,GOOG,AMZN,NVDA,META,TSLA,NFLX"

    @Option(help: "Stop after this many writes (default: run until stopped).")
    var count: Int?

    @Option(help: "The server's URL (default http://127.0.0.1:8080). Env: SWITCHBOARD_URL.")
    var url: String?

    func validate() throws {
        guard scenario == "stocks" else { throw ValidationError("unknown scenario \"\(scenario)\"; try: stocks") }
        guard rate > 0, rate <= 10_000 else { throw ValidationError("--rate must be between 0 and 10000") }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        var base = url ?? environment["SWITCHBOARD_URL"] ?? "http://127.0.0.1:8080"
        while base.hasSuffix("/") { base.removeLast() }
        let key = environment["SWITCHBOARD_API_KEY"]
        let names = symbols.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        var prices = Dictionary(uniqueKeysWithValues: names.map { ($0, Double.random(in: 50...500)) })
        let session = URLSession(configuration: .ephemeral)
        let interval = 1.0 / rate
        var written = 0
        var next = Date()
        print("simulating \(names.count) stocks at \(rate) writes/s on \(base); Ctrl-C to stop")
        while count.map({ written < $0 }) ?? true {
            let symbol = names[written % names.count]
            // A random walk: ±1% a step, never below a cent.
            let price = max(0.01, (prices[symbol]! * (1 + Double.random(in: -0.01...0.01)) * 100).rounded() / 100)
            prices[symbol] = price
            var request = URLRequest(url: URL(string: "\(base)/v1/collections/stocks/\(symbol)")!)
            request.httpMethod = "PUT"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
            request.httpBody = Data(#"{"symbol":"\#(symbol)","price":\#(price)}"#.utf8)
            do {
                let (body, response) = try await session.data(for: request)
                if let http = response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
                    FileHandle.standardError.write(Data("switchboard simulate: \(http.statusCode) \(String(decoding: body, as: UTF8.self))\n".utf8))
                    if http.statusCode == 401 || http.statusCode == 403 { throw ExitCode.failure }
                }
            } catch let error as ExitCode {
                throw error
            } catch {
                FileHandle.standardError.write(Data("switchboard simulate: \(error.localizedDescription); retrying\n".utf8))
                try await Task.sleep(for: .seconds(1))
            }
            written += 1
            next = next.addingTimeInterval(interval)
            let wait = next.timeIntervalSinceNow
            if wait > 0 { try await Task.sleep(for: .milliseconds(Int(wait * 1000))) } else { next = Date() }
        }
    }
}
