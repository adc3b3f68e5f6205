import Benchmark
import Foundation
import SwitchboardCore
// Needs the `SwitchboardStore` library product in the Switchboard package:
// `.library(name: "SwitchboardStore", targets: ["SwitchboardStore"])`.
import SwitchboardStore

// MARK: - 4. History append (SQLite)

func historyBenchmarks() {
    // `SQLiteStore.publish`: one transaction that assigns the channel's next offset, inserts the
    // message into history and prunes the history to 1,000 messages (WAL, synchronous=NORMAL).
    // The history is filled to 1,000 in setup, so every measured publish also deletes the oldest.
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("switchboard-bench-\(UUID().uuidString)", isDirectory: true)
    let channel = "prices:bench"
    let policy = HistoryPolicy(size: 1_000, ttlSeconds: 0)

    Benchmark(
        "History append (SQLite)",
        configuration: .init(scalingFactor: .one)
    ) { (benchmark: Benchmark, store: SQLiteStore) async throws in
        for _ in benchmark.scaledIterations {
            let result = try await store.publish(
                channel: channel, data: Fixture.data, idempotencyKey: nil, history: policy, onCommit: { _ in }
            )
            blackHole(result)
        }
    } setup: { () async throws -> SQLiteStore in
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: directory.appendingPathComponent("bench.sqlite").path)
        for _ in 0..<policy.size {
            _ = try await store.publish(channel: channel, data: Fixture.data, idempotencyKey: nil, history: policy, onCommit: { _ in })
        }
        return store
    } teardown: {
        try? FileManager.default.removeItem(at: directory)
    }
}
