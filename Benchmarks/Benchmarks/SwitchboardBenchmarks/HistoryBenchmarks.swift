import Benchmark
import Foundation
import Synchronization
import SwitchboardCore
import SwitchboardSQLite
import SwitchboardStore

// MARK: - 4. History append (SQLite)

/// The store under test and its background service (WAL checkpoints), as the server runs it.
final class SQLiteBench: Sendable {
    let directory: URL
    let store: SQLiteStore
    private let service = Mutex<Task<Void, Never>?>(nil)

    init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try SQLiteStore(path: directory.appendingPathComponent("bench.sqlite").path)
        let store = self.store
        // The writer never checkpoints (`wal_autocheckpoint = 0`): `run()` does, every 250 ms,
        // from a connection of its own. Without it the write-ahead log would only grow.
        service.withLock { $0 = Task { try? await store.run() } }
    }

    func stop() async {
        let task = service.withLock { $0 }
        task?.cancel()
        await task?.value
        try? FileManager.default.removeItem(at: directory)
    }
}

func historyBenchmarks() {
    // `SQLiteStore.publish` of one message, awaited before the next: with nothing else
    // waiting, the group commit writes it as a batch of one, in one transaction that assigns
    // the channel's next offset, inserts the message into history and prunes the history to
    // 1,000 messages (WAL, synchronous=NORMAL), then answers the publisher. The history is
    // filled to 1,000 in setup, so every measured publish also deletes the oldest.
    let channel = "prices:bench"
    let policy = HistoryPolicy(size: 1_000, ttlSeconds: 0)
    let box = SQLiteBenchBox()

    Benchmark(
        "History append (SQLite)",
        configuration: .init(scalingFactor: .one)
    ) { (benchmark: Benchmark, store: SQLiteStore) async throws in
        for _ in benchmark.scaledIterations {
            let result = try await store.publish(channel: channel, data: Fixture.data, idempotencyKey: nil, history: policy)
            blackHole(result)
        }
    } setup: { () async throws -> SQLiteStore in
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("switchboard-bench-\(UUID().uuidString)", isDirectory: true)
        let opened = try SQLiteBench(directory: directory)
        box.set(opened)
        for _ in 0..<policy.size {
            _ = try await opened.store.publish(channel: channel, data: Fixture.data, idempotencyKey: nil, history: policy)
        }
        return opened.store
    } teardown: {
        await box.take()?.stop()
    }
}

/// Hands the setup's store to the teardown.
final class SQLiteBenchBox: Sendable {
    private let value = Mutex<SQLiteBench?>(nil)
    func set(_ bench: SQLiteBench) { value.withLock { $0 = bench } }
    func take() -> SQLiteBench? { value.withLock { v in defer { v = nil }; return v } }
}
