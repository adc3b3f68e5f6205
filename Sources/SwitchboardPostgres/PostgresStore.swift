import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization
import SwitchboardCore
import SwitchboardStore

/// The cluster's store (SPEC section 7): every node given the same database is one cluster.
///
/// The messages table is the truth. Publishes go in batches (`PublishBatcher`), a batch
/// being one call of `switchboard_publish_batch` (one statement, one round trip); once it has committed, the node hands the message to its own
/// feed and queues a notification for the others (after the commit, never inside the
/// transaction: NOTIFY takes a cluster-wide lock until commit). The other nodes learn of it
/// from the notification, or, if that is lost, from the listener's catch-up and the poller,
/// and their sequencers read any gap from the table.
public final class PostgresStore: Store {
    let client: PostgresClient
    let url: PostgresURL
    let nodeID: String
    let logger: Logger
    /// The database's epoch: the one every channel starts with.
    public let databaseEpoch: String
    let notifier: Notifier
    let presenceWriter: PresenceWriter
    /// Set once in `init`; a class so that it can call back into the store.
    private let batcher = Mutex<PublishBatcher?>(nil)
    private let feedBox = Mutex<(any StoreFeed)?>(nil)
    /// How long one database operation may take before the caller gets `unavailable`; while
    /// the database is known to be away, the short one, so that callers hear it at once.
    let operationTimeout: Duration
    static let outageTimeout: Duration = .seconds(1)
    /// False since an operation or the listener found the database away, until one gets through.
    private let reachable = Atomic<Bool>(true)
    /// How often the last offsets of watched channels are read.
    let pollInterval: Duration
    /// Messages kept beyond a channel's history size, so that a node that fell behind can
    /// still read what it missed.
    static let deliveryWindow: Int64 = 1000

    private init(client: PostgresClient, url: PostgresURL, nodeID: String, epoch: String, logger: Logger, pollInterval: Duration) {
        self.client = client
        self.url = url
        self.nodeID = nodeID
        self.databaseEpoch = epoch
        self.logger = logger
        self.operationTimeout = .seconds(5)
        self.pollInterval = pollInterval
        self.notifier = Notifier(client: client, logger: logger)
        self.presenceWriter = PresenceWriter(client: client, notifier: notifier, nodeID: nodeID, logger: logger, timeout: operationTimeout)
        let batcher = PublishBatcher { [unowned self] requests in try await self.publishBatch(requests) }
        self.batcher.withLock { $0 = batcher }
    }

    /// Connects, migrates the schema, and returns the store; `run()` must then run for as
    /// long as it is used.
    public static func open(url: PostgresURL, nodeID: String, logger: Logger, pollInterval: Duration = .milliseconds(300)) async throws -> PostgresStore {
        let epoch: String
        do {
            let connection = try await PostgresConnection.connect(
                configuration: try url.connectionConfiguration(node: nodeID), id: 0, logger: logger
            )
            defer { Task { try? await connection.close() } }
            epoch = try await PostgresSchema.migrate(connection, epoch: Epoch.random(), logger: logger)
            // Registered at once, so that no sweep takes this node's first members for orphans.
            try await connection.query(
                "INSERT INTO nodes (id, seen_at, report) VALUES (\(nodeID), (extract(epoch from clock_timestamp()) * 1000)::bigint, '{}')",
                logger: logger
            )
        } catch {
            throw StoreUnavailable("cannot open the database \(url): \(PostgresErrors.describe(error))")
        }
        let client = PostgresClient(configuration: url.clientConfiguration(node: nodeID), backgroundLogger: logger)
        return PostgresStore(client: client, url: url, nodeID: nodeID, epoch: epoch, logger: logger, pollInterval: pollInterval)
    }

    var feed: (any StoreFeed)? { feedBox.withLock { $0 } }

    public func attach(feed: any StoreFeed) {
        feedBox.withLock { $0 = feed }
    }

    /// The pool, the listener, the poller and the notifier, until a graceful shutdown (the
    /// store is the last service to stop) or cancellation.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.client.run() }
                group.addTask { await self.notifier.run() }
                group.addTask { await self.presenceWriter.run() }
                group.addTask { await Listener(store: self).run() }
                group.addTask { await self.poll() }
            }
        }
    }

    // MARK: Channels

    public func publish(channel: String, data: String, idempotencyKey: String?, history: HistoryPolicy) async throws -> PublishResult {
        let request = PublishBatcher.Request(
            channel: channel, data: data, key: idempotencyKey, keep: Int32(clamping: history.size),
            ttlMillis: Int64(history.ttlSeconds) * 1000
        )
        let outcome = try await batcher.withLock { $0! }.publish(request)
        let position = Position(epoch: outcome.epoch, offset: outcome.offset)
        if !outcome.duplicate { committed(ChannelMessage(channel: channel, epoch: outcome.epoch, offset: outcome.offset, data: data)) }
        return PublishResult(position: position, duplicate: outcome.duplicate)
    }

    /// One batch of publishes: one statement, one commit.
    private func publishBatch(_ requests: [PublishBatcher.Request]) async throws -> [PublishBatcher.Outcome] {
        let now = Timestamp.nowMilliseconds()
        let channels = requests.map(\.channel)
        let data = requests.map(\.data)
        let keys = requests.map { $0.key ?? "" }  // Empty: none (keys are 1-200 bytes).
        let keep = requests.map(\.keep)
        let ttl = requests.map(\.ttlMillis)
        let epoch = databaseEpoch
        // Batches take their locks in one order, but the pruning of old keys does not: a
        // batch that PostgreSQL picked to break a deadlock was rolled back whole, so it runs again.
        var attempt = 1
        while true {
            do {
                return try await run {
                    try await Self.rows(
                        try await self.client.query("""
                            SELECT out_epoch, out_pos, out_duplicate FROM switchboard_publish_batch(\(channels), \(data), \(keys), \
                            \(keep), \(ttl), \(now), \(Idempotency.windowMillis), \(epoch))
                            """),
                        as: (String, Int64, Bool).self
                    ).map { (epoch: $0.0, offset: $0.1, duplicate: $0.2) }
                }
            } catch where attempt < 3 && PostgresErrors.isRetryable(error) {
                logger.warning("a publish batch was rolled back and runs again", metadata: ["reason": "\(PostgresErrors.describe(error))"])
                attempt += 1
            }
        }
    }

    /// After a commit: this node's feed at once, the others through a notification.
    private func committed(_ message: ChannelMessage) {
        feed?.committed(message)
        notifier.send(Notification.line(for: message))
    }

    public func position(channel: String) async throws -> Position {
        let row = try await one("SELECT epoch, last_offset FROM channels WHERE name = \(channel)", as: (String, Int64).self)
        return row.map { Position(epoch: $0.0, offset: $0.1) } ?? Position(epoch: databaseEpoch, offset: 0)
    }

    public func history(channel: String, after: Int64?, limit: Int, history: HistoryPolicy) async throws -> HistorySlice {
        let now = Timestamp.nowMilliseconds()
        let keep = Int64(history.size)
        let limit = Int64(limit)
        return try await snapshot { connection in
            let position = try await Self.rows(
                try await connection.query("SELECT epoch, last_offset FROM channels WHERE name = \(channel)", logger: self.logger),
                as: (String, Int64).self
            ).first.map { Position(epoch: $0.0, offset: $0.1) } ?? Position(epoch: self.databaseEpoch, offset: 0)
            let floor = max(after ?? 0, position.offset - keep)
            let query: PostgresQuery = after == nil
                ? """
                  SELECT pos, data FROM (SELECT pos, data FROM messages WHERE channel = \(channel) AND pos > \(floor) \
                  AND (expires_at IS NULL OR expires_at > \(now)) ORDER BY pos DESC LIMIT \(limit)) latest ORDER BY pos
                  """
                : """
                  SELECT pos, data FROM messages WHERE channel = \(channel) AND pos > \(floor) \
                  AND (expires_at IS NULL OR expires_at > \(now)) ORDER BY pos LIMIT \(limit)
                  """
            let messages = try await Self.rows(try await connection.query(query, logger: self.logger), as: (Int64, String).self).map {
                ChannelMessage(channel: channel, epoch: position.epoch, offset: $0.0, data: $0.1)
            }
            var complete = true
            if let after {
                complete = after <= position.offset && (after == position.offset || messages.first?.offset == after + 1)
            }
            return HistorySlice(messages: messages, position: position, complete: complete)
        }
    }

    public func messages(channel: String, after: Int64, through: Int64) async throws -> [ChannelMessage] {
        try await run {
            try await Self.rows(
                try await self.client.query(
                    """
                    SELECT c.epoch, m.pos, m.data FROM messages m JOIN channels c ON c.name = m.channel
                    WHERE m.channel = \(channel) AND m.pos > \(after) AND m.pos <= \(through) ORDER BY m.pos
                    """
                ),
                as: (String, Int64, String).self
            ).map { ChannelMessage(channel: channel, epoch: $0.0, offset: $0.1, data: $0.2) }
        }
    }

    /// The last offsets of `channels`, in one query (the poller and the listener's catch-up).
    func positions(of channels: [String]) async throws -> [(channel: String, position: Position)] {
        try await run {
            try await Self.rows(
                try await self.client.query("SELECT name, epoch, last_offset FROM channels WHERE name = ANY(\(channels))"),
                as: (String, String, Int64).self
            ).map { ($0.0, Position(epoch: $0.1, offset: $0.2)) }
        }
    }

    /// Reads the positions of the watched channels and tells the feed: it fills what it missed.
    func catchUp() async throws {
        guard let feed else { return }
        let channels = feed.watchedChannels
        guard !channels.isEmpty else { return }
        for (channel, position) in try await positions(of: channels) {
            feed.reached(channel: channel, epoch: position.epoch, offset: position.offset)
        }
    }

    /// Every `pollInterval`: catches up on what no notification announced (one lost while
    /// the listener reconnected, or never sent by a node killed between commit and notify).
    private func poll() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: pollInterval)
            do {
                try await catchUp()
            } catch {
                logger.debug("poll failed", metadata: ["error": "\(error)"])
            }
        }
    }

    public func pruneExpired(nowMillis: Int64) async throws -> Int {
        try await transaction { connection in
            // One node prunes at a time; the others skip this round.
            let mine = try await Self.rows(
                try await connection.query("SELECT pg_try_advisory_xact_lock(\(PostgresSchema.migrationLock + 1))", logger: self.logger),
                as: Bool.self
            ).first ?? false
            guard mine else { return 0 }
            let removed: Int64 = try await Self.rows(
                try await connection.query(
                    """
                    WITH gone AS (
                        DELETE FROM messages m USING channels c WHERE m.channel = c.name
                        AND ((m.expires_at IS NOT NULL AND m.expires_at <= \(nowMillis))
                             OR m.pos <= c.last_offset - c.keep - \(Self.deliveryWindow))
                        RETURNING 1
                    )
                    SELECT count(*) FROM gone
                    """,
                    logger: self.logger
                ),
                as: Int64.self
            ).first ?? 0
            try await connection.query("DELETE FROM idempotency WHERE created_at <= \(nowMillis - Idempotency.windowMillis)", logger: self.logger)
            return Int(removed)
        }
    }

    public func ping() async throws {
        _ = try await one("SELECT 1", as: Int32.self)
    }

    // MARK: Records

    public func listRecords(collection: String, after: String?, limit: Int, filters: [(field: String, value: String)]) async throws -> RecordPage {
        var sql = "SELECT id, version, created_at, updated_at, data FROM records WHERE collection = $1"
        var binds = PostgresBindings()
        binds.append(collection)
        if let after {
            binds.append(after)
            sql += " AND id > $\(binds.count)"
        }
        for filter in filters {
            // Compare the field's value as text: a string as itself, a number or literal as JSON.
            binds.append(filter.field)
            let field = "$\(binds.count)"
            binds.append(filter.value)
            sql += """
                 AND (CASE jsonb_typeof(data::jsonb -> \(field)) WHEN 'string' THEN data::jsonb ->> \(field)
                 WHEN 'null' THEN 'null' ELSE (data::jsonb -> \(field))::text END) = $\(binds.count)
                """
        }
        binds.append(Int64(limit + 1))
        sql += " ORDER BY id LIMIT $\(binds.count)"
        let query = PostgresQuery(unsafeSQL: sql, binds: binds)
        let channel = Names.collectionChannel(collection)
        let (rows, position) = try await snapshot { connection in
            let rows = try await Self.rows(try await connection.query(query, logger: self.logger), as: (String, Int64, String, String, String).self)
            let position = try await Self.rows(
                try await connection.query("SELECT epoch, last_offset FROM channels WHERE name = \(channel)", logger: self.logger),
                as: (String, Int64).self
            ).first.map { Position(epoch: $0.0, offset: $0.1) } ?? Position(epoch: self.databaseEpoch, offset: 0)
            return (rows, position)
        }
        let items = try rows.prefix(limit).map(Self.record)
        return RecordPage(items: items, next: rows.count > limit ? items.last?.id : nil, position: position)
    }

    public func record(collection: String, id: String) async throws -> Record? {
        try await one(
            "SELECT id, version, created_at, updated_at, data FROM records WHERE collection = \(collection) AND id = \(id)",
            as: (String, Int64, String, String, String).self
        ).map(Self.record)
    }

    private static func record(_ row: (String, Int64, String, String, String)) throws -> Record {
        guard case .object(let data) = try JSONValue.parse(row.4) else { throw StoreError.corrupt("record data is not an object") }
        return Record(id: row.0, version: row.1, createdAt: row.2, updatedAt: row.3, data: data)
    }

    public func writeRecord(
        collection: String,
        id: String,
        history: HistoryPolicy,
        decide: @escaping @Sendable (Record?) throws -> RecordChange
    ) async throws -> RecordWriteResult {
        let channel = Names.collectionChannel(collection)
        let result = try await transaction { connection in
            // Writes of one record wait for each other, whether it exists yet or not.
            try await connection.query("SELECT pg_advisory_xact_lock(hashtextextended(\(collection + "\n" + id), 0))", logger: self.logger)
            let current = try await Self.rows(
                try await connection.query(
                    "SELECT id, version, created_at, updated_at, data FROM records WHERE collection = \(collection) AND id = \(id)",
                    logger: self.logger
                ),
                as: (String, Int64, String, String, String).self
            ).first.map(Self.record)
            let (record, action) = try decide(current).apply(to: current, collection: collection, id: id, now: Timestamp.format(Date()))
            let text = JSONValue.object(record.data).serialized
            switch action {
            case .created:
                try await connection.query(
                    """
                    INSERT INTO records (collection, id, version, created_at, updated_at, data)
                    VALUES (\(collection), \(id), 1, \(record.createdAt), \(record.updatedAt), \(text))
                    """,
                    logger: self.logger
                )
            case .updated:
                try await connection.query(
                    """
                    UPDATE records SET version = \(record.version), updated_at = \(record.updatedAt), data = \(text)
                    WHERE collection = \(collection) AND id = \(id)
                    """,
                    logger: self.logger
                )
            case .deleted:
                try await connection.query("DELETE FROM records WHERE collection = \(collection) AND id = \(id)", logger: self.logger)
            }
            let eventData = RecordWriteResult.eventData(action: action, record: record).serialized
            let event = try await self.append(connection, channel: channel, data: eventData, history: history)
            return RecordWriteResult(record: record, action: action, event: event)
        }
        committed(result.event)
        return result
    }

    /// Takes the channel's next offset and stores the message: the counter row is locked
    /// last in its transaction, until the commit.
    private func append(_ connection: PostgresConnection, channel: String, data: String, history: HistoryPolicy) async throws -> ChannelMessage {
        let now = Timestamp.nowMilliseconds()
        let expires: Int64? = history.ttlSeconds > 0 ? now + Int64(history.ttlSeconds) * 1000 : nil
        let keep = Int32(clamping: history.size)
        let row = try await Self.rows(
            try await connection.query(
                """
                WITH c AS (
                    INSERT INTO channels AS ch (name, epoch, last_offset, keep) VALUES (\(channel), \(databaseEpoch), 1, \(keep))
                    ON CONFLICT (name) DO UPDATE SET last_offset = ch.last_offset + 1, keep = \(keep)
                    RETURNING epoch, last_offset
                ), m AS (
                    INSERT INTO messages (channel, pos, data, created_at, expires_at)
                    SELECT \(channel), last_offset, \(data), \(now), \(expires) FROM c
                )
                SELECT epoch, last_offset FROM c
                """,
                logger: logger
            ),
            as: (String, Int64).self
        ).first
        guard let (epoch, offset) = row else { throw StoreError.corrupt("the channel counter returned nothing") }
        return ChannelMessage(channel: channel, epoch: epoch, offset: offset, data: data)
    }

    // MARK: Running queries

    /// Runs `operation` with the timeout, turning a lost or silent database into `StoreUnavailable`.
    func run<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let timeout = reachable.load(ordering: .relaxed) ? operationTimeout : Self.outageTimeout
        do {
            let value = try await PostgresErrors.guarding(timeout: timeout, operation)
            reachable.store(true, ordering: .relaxed)
            return value
        } catch let error as StoreUnavailable {
            reachable.store(false, ordering: .relaxed)
            throw error
        }
    }

    /// What the listener learns of the database's state.
    func noteReachable(_ up: Bool) {
        reachable.store(up, ordering: .relaxed)
    }

    /// The first row of a query on the pool, or nil.
    func one<each Column: PostgresDecodable & Sendable>(_ query: PostgresQuery, as: (repeat each Column).Type) async throws -> (repeat each Column)? {
        try await run { try await Self.rows(try await self.client.query(query), as: (repeat each Column).self).first }
    }

    /// One transaction (READ COMMITTED) on a leased connection.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await run {
            try await self.client.withConnection { connection in
                try await Self.inTransaction(connection, begin: "BEGIN", logger: self.logger, body)
            }
        }
    }

    /// Reads that must agree (a list and its offset, history and its position), in one
    /// `REPEATABLE READ READ ONLY` transaction.
    func snapshot<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await run {
            try await self.client.withConnection { connection in
                try await Self.inTransaction(connection, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: self.logger, body)
            }
        }
    }

    private static func inTransaction<T>(
        _ connection: PostgresConnection, begin: String, logger: Logger, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await connection.query(PostgresQuery(unsafeSQL: begin), logger: logger)
        let value: T
        do {
            value = try await body(connection)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
        try await connection.query("COMMIT", logger: logger)
        return value
    }

    static func rows<each Column: PostgresDecodable & Sendable>(
        _ sequence: PostgresRowSequence, as: (repeat each Column).Type
    ) async throws -> [(repeat each Column)] {
        var out: [(repeat each Column)] = []
        for try await row in sequence.decode((repeat each Column).self) { out.append(row) }
        return out
    }
}
