import Foundation
import GRDB
import ServiceLifecycle
import Synchronization
import SwitchboardCore
import SwitchboardStore

/// The embedded store of a single node: one SQLite file in WAL mode through a GRDB
/// `DatabasePool`.
///
/// SQLite has one writer at a time, so offsets are assigned in commit order, and the feed
/// is called in that order (by the one group-commit writer for publishes, while the writer
/// is held for collection writes): the feed sees each channel's messages in order, and
/// never has a gap to fill.
public final class SQLiteStore: Store, BatchWriter {
    private let pool: DatabasePool
    private let feedBox = Mutex<(any StoreFeed)?>(nil)
    /// The connection that copies the write-ahead log into the database (and fsyncs it).
    private let checkpointer: DatabaseQueue
    /// How often the log is checkpointed.
    static let checkpointInterval = Duration.milliseconds(250)
    /// Publishes that arrive while a batch is being written go together in the next one.
    private let committer = GroupCommit()
    /// Epoch given to channels created in this database; it changes only with a new file.
    public let databaseEpoch: String

    public init(path: String) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // WAL + NORMAL: a commit survives a process crash; only an OS crash can lose the last ones.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // No checkpoint by the writer: its fsyncs would stall the event loop that commits.
            // `run` checkpoints from a connection of its own instead.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
        }
        configuration.busyMode = .timeout(10)
        pool = try DatabasePool(path: path, configuration: configuration)
        checkpointer = try DatabaseQueue(path: path, configuration: configuration)
        try Self.migrator.migrate(pool)
        databaseEpoch = try pool.read { db in
            try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'epoch'")!
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE channels (
                    name TEXT PRIMARY KEY,
                    epoch TEXT NOT NULL,
                    last_offset INTEGER NOT NULL
                );
                CREATE TABLE messages (
                    channel TEXT NOT NULL,
                    pos INTEGER NOT NULL,
                    data TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER,
                    PRIMARY KEY (channel, pos)
                ) WITHOUT ROWID;
                CREATE INDEX messages_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL;
                CREATE TABLE records (
                    collection TEXT NOT NULL,
                    id TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL,
                    data TEXT NOT NULL,
                    PRIMARY KEY (collection, id)
                ) WITHOUT ROWID;
                """)
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('epoch', ?)", arguments: [Epoch.random()])
        }
        migrator.registerMigration("v2-idempotency") { db in
            try db.execute(sql: """
                CREATE TABLE idempotency (
                    channel TEXT NOT NULL,
                    key TEXT NOT NULL,
                    epoch TEXT NOT NULL,
                    pos INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (channel, key)
                ) WITHOUT ROWID;
                CREATE INDEX idempotency_age ON idempotency (created_at);
                """)
        }
        return migrator
    }

    public func attach(feed: any StoreFeed) {
        feedBox.withLock { $0 = feed }
    }

    /// Checkpoints the write-ahead log in the background until cancelled or a graceful
    /// shutdown: passive checkpoints, which never block the writer or readers, on a thread
    /// of GRDB's, so that the fsyncs they make never stall a commit.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.checkpointInterval)
                _ = try? await self.checkpointer.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            }
        }
        _ = try? await checkpointer.writeWithoutTransaction { db in try db.checkpoint(.passive) }
    }

    // MARK: Channels

    public func publish(
        channel: String,
        data: String,
        idempotencyKey: String?,
        history: HistoryPolicy
    ) async throws -> PublishResult {
        try await committer.publish(GroupCommit.Request(channel: channel, data: data, key: idempotencyKey, history: history), to: self)
    }

    /// Writes a batch of publishes in one transaction (one commit), each in a savepoint of
    /// its own so that one that fails takes no other with it. Runs on the calling thread:
    /// GRDB's synchronous write takes SQLite's writer there, so a publish crosses no thread.
    func write(_ requests: [GroupCommit.Request]) -> (results: [Result<PublishResult, any Error>], committed: [ChannelMessage]) {
        let epoch = databaseEpoch
        do {
            return try pool.writeWithoutTransaction { db in
                var results: [Result<PublishResult, any Error>] = []
                var committed: [ChannelMessage] = []
                results.reserveCapacity(requests.count)
                try db.inTransaction {
                    let now = Timestamp.nowMilliseconds()
                    for request in requests {
                        do {
                            var result: PublishResult?
                            try db.inSavepoint {
                                result = try Self.publish(db, request, now: now, newEpoch: epoch, committed: &committed)
                                return .commit
                            }
                            results.append(.success(result!))
                        } catch {
                            results.append(.failure(error))
                        }
                    }
                    return .commit
                }
                return (results, committed)
            }
        } catch {
            return (requests.map { _ in .failure(error) }, [])
        }
    }

    func deliver(_ committed: [ChannelMessage]) {
        guard let feed = feedBox.withLock({ $0 }) else { return }
        for message in committed { feed.committed(message) }
    }

    /// One publish inside the batch's transaction: the earlier position for a repeated
    /// idempotency key, else a new message.
    private static func publish(
        _ db: Database, _ request: GroupCommit.Request, now: Int64, newEpoch: String, committed: inout [ChannelMessage]
    ) throws -> PublishResult {
        if let key = request.key {
            let earlier = try db.cachedStatement(sql: "SELECT epoch, pos FROM idempotency WHERE channel = ? AND key = ? AND created_at > ?")
            if let row = try Row.fetchOne(earlier, arguments: [request.channel, key, now - Idempotency.windowMillis]) {
                return PublishResult(position: Position(epoch: row["epoch"], offset: row["pos"]), duplicate: true)
            }
        }
        let message = try append(db, channel: request.channel, data: request.data, history: request.history, newEpoch: newEpoch, now: now)
        if let key = request.key {
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO idempotency (channel, key, epoch, pos, created_at) VALUES (?, ?, ?, ?, ?)")
                .execute(arguments: [request.channel, key, message.epoch, message.offset, now])
        }
        committed.append(message)
        return PublishResult(position: message.position, duplicate: false)
    }

    /// Assigns the next offset and keeps the message as history; call inside a transaction.
    private static func append(_ db: Database, channel: String, data: String, history: HistoryPolicy, newEpoch: String, now: Int64) throws -> ChannelMessage {
        let next = try db.cachedStatement(sql: """
            INSERT INTO channels (name, epoch, last_offset) VALUES (?, ?, 1)
            ON CONFLICT (name) DO UPDATE SET last_offset = last_offset + 1
            RETURNING epoch, last_offset
            """)
        let row = try Row.fetchOne(next, arguments: [channel, newEpoch])!
        let message = ChannelMessage(channel: channel, epoch: row["epoch"], offset: row["last_offset"], data: data)
        if history.size > 0 {
            let expires: Int64? = history.ttlSeconds > 0 ? now + Int64(history.ttlSeconds) * 1000 : nil
            try db.cachedStatement(sql: "INSERT INTO messages (channel, pos, data, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
                .execute(arguments: [channel, message.offset, data, now, expires])
            let oldestKept = message.offset - Int64(history.size) + 1
            if oldestKept > 1 {
                try db.cachedStatement(sql: "DELETE FROM messages WHERE channel = ? AND pos < ?").execute(arguments: [channel, oldestKept])
            }
        }
        return message
    }

    public func position(channel: String) async throws -> Position {
        let epoch = databaseEpoch
        return try await pool.read { db in try Self.position(db, channel: channel, defaultEpoch: epoch) }
    }

    private static func position(_ db: Database, channel: String, defaultEpoch: String) throws -> Position {
        guard let row = try Row.fetchOne(db, sql: "SELECT epoch, last_offset FROM channels WHERE name = ?", arguments: [channel]) else {
            return Position(epoch: defaultEpoch, offset: 0)
        }
        return Position(epoch: row["epoch"], offset: row["last_offset"])
    }

    public func history(channel: String, after: Int64?, limit: Int, history: HistoryPolicy) async throws -> HistorySlice {
        let epoch = databaseEpoch
        let now = Timestamp.nowMilliseconds()
        return try await pool.read { db in
            let position = try Self.position(db, channel: channel, defaultEpoch: epoch)
            let rows: [Row]
            if let after {
                rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT pos, data FROM messages
                        WHERE channel = ? AND pos > ? AND (expires_at IS NULL OR expires_at > ?)
                        ORDER BY pos LIMIT ?
                        """,
                    arguments: [channel, after, now, limit]
                )
            } else {
                rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT pos, data FROM messages
                        WHERE channel = ? AND (expires_at IS NULL OR expires_at > ?)
                        ORDER BY pos DESC LIMIT ?
                        """,
                    arguments: [channel, now, limit]
                ).reversed()
            }
            let messages = rows.map {
                ChannelMessage(channel: channel, epoch: position.epoch, offset: $0["pos"], data: $0["data"])
            }
            var complete = true
            if let after {
                complete = after <= position.offset && (after == position.offset || messages.first?.offset == after + 1)
            }
            return HistorySlice(messages: messages, position: position, complete: complete)
        }
    }

    public func messages(channel: String, after: Int64, through: Int64) async throws -> [ChannelMessage] {
        let epoch = databaseEpoch
        return try await pool.read { db in
            let position = try Self.position(db, channel: channel, defaultEpoch: epoch)
            return try Row.fetchAll(
                db,
                sql: "SELECT pos, data FROM messages WHERE channel = ? AND pos > ? AND pos <= ? ORDER BY pos",
                arguments: [channel, after, through]
            ).map { ChannelMessage(channel: channel, epoch: position.epoch, offset: $0["pos"], data: $0["data"]) }
        }
    }

    public func pruneExpired(nowMillis: Int64) async throws -> Int {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?", arguments: [nowMillis])
            let removed = db.changesCount
            try db.execute(sql: "DELETE FROM idempotency WHERE created_at <= ?", arguments: [nowMillis - Idempotency.windowMillis])
            return removed
        }
    }

    public func ping() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    // MARK: Records

    public func listRecords(collection: String, after: String?, limit: Int, filters: [(field: String, value: String)]) async throws -> RecordPage {
        let epoch = databaseEpoch
        var sql = "SELECT id, version, created_at, updated_at, data FROM records WHERE collection = ?"
        var arguments: StatementArguments = [collection]
        if let after {
            sql += " AND id > ?"
            arguments += [after]
        }
        for filter in filters {
            // Compare the field's value as text: a string as itself, a number or literal as JSON.
            let path = "$.\"\(filter.field)\""
            sql += """
                 AND (CASE json_type(data, ?) WHEN 'text' THEN json_extract(data, ?)
                 WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null'
                 WHEN 'integer' THEN CAST(json_extract(data, ?) AS TEXT)
                 WHEN 'real' THEN CAST(json_extract(data, ?) AS TEXT) END) = ?
                """
            arguments += [path, path, path, path, filter.value]
        }
        sql += " ORDER BY id LIMIT ?"
        arguments += [limit + 1]
        let channel = Names.collectionChannel(collection)
        let query = sql, values = arguments
        // Rows are made into records inside the read: they may not leave the database's queue.
        let (records, position) = try await pool.read { db in
            (try Row.fetchAll(db, sql: query, arguments: values).map(Self.record), try Self.position(db, channel: channel, defaultEpoch: epoch))
        }
        let items = Array(records.prefix(limit))
        let next = records.count > limit ? items.last?.id : nil
        return RecordPage(items: items, next: next, position: position)
    }

    public func record(collection: String, id: String) async throws -> SwitchboardCore.Record? {
        try await pool.read { db in try Self.fetchRecord(db, collection: collection, id: id) }
    }

    private static func fetchRecord(_ db: Database, collection: String, id: String) throws -> SwitchboardCore.Record? {
        try Row.fetchOne(
            db,
            sql: "SELECT id, version, created_at, updated_at, data FROM records WHERE collection = ? AND id = ?",
            arguments: [collection, id]
        ).map(record)
    }

    private static func record(_ row: Row) throws -> SwitchboardCore.Record {
        let text: String = row["data"]
        guard case .object(let data) = try JSONValue.parse(text) else {
            throw StoreError.corrupt("record data is not an object")
        }
        return SwitchboardCore.Record(id: row["id"], version: row["version"], createdAt: row["created_at"], updatedAt: row["updated_at"], data: data)
    }

    public func writeRecord(
        collection: String,
        id: String,
        history: HistoryPolicy,
        decide: @escaping @Sendable (SwitchboardCore.Record?) throws -> RecordChange
    ) async throws -> RecordWriteResult {
        let epoch = databaseEpoch
        let feed = feedBox.withLock { $0 }
        return try await pool.writeWithoutTransaction { db in
            var result: RecordWriteResult!
            try db.inTransaction {
                let current = try Self.fetchRecord(db, collection: collection, id: id)
                let (record, action) = try decide(current).apply(to: current, collection: collection, id: id, now: Timestamp.format(Date()))
                let text = JSONValue.object(record.data).serialized
                switch action {
                case .updated:
                    try db.execute(
                        sql: "UPDATE records SET version = ?, updated_at = ?, data = ? WHERE collection = ? AND id = ?",
                        arguments: [record.version, record.updatedAt, text, collection, id]
                    )
                case .created:
                    try db.execute(
                        sql: "INSERT INTO records (collection, id, version, created_at, updated_at, data) VALUES (?, ?, 1, ?, ?, ?)",
                        arguments: [collection, id, record.createdAt, record.updatedAt, text]
                    )
                case .deleted:
                    try db.execute(sql: "DELETE FROM records WHERE collection = ? AND id = ?", arguments: [collection, id])
                }
                let eventData = RecordWriteResult.eventData(action: action, record: record).serialized
                let event = try Self.append(
                    db, channel: Names.collectionChannel(collection), data: eventData, history: history, newEpoch: epoch,
                    now: Timestamp.nowMilliseconds()
                )
                result = RecordWriteResult(record: record, action: action, event: event)
                return .commit
            }
            feed?.committed(result.event)
            return result
        }
    }
}
