import SwitchboardCore

/// Durable records, channel offsets and history. Implementations assign offsets inside the
/// write's transaction and call `onCommit` in commit order, after the commit, so the hub
/// fans out exactly what is durable and in offset order.
public protocol Store: Sendable {
    /// Appends a message at the channel's next offset. With an idempotency key seen on this
    /// channel within `Idempotency.window`, nothing is published and the first position is returned.
    func publish(
        channel: String,
        data: String,
        idempotencyKey: String?,
        history: HistoryPolicy,
        onCommit: @escaping @Sendable (ChannelMessage) -> Void
    ) async throws -> PublishResult

    /// The channel's current position (offset 0 for a channel that never had a message).
    func position(channel: String) async throws -> Position

    /// Messages after `after` (up to `limit`), or the latest `limit` without it, read in one
    /// snapshot with the channel's position. `complete` says whether every message after
    /// `after` up to the position is in the result or beyond the limit (none pruned).
    func history(channel: String, after: Int64?, limit: Int, history: HistoryPolicy) async throws -> HistorySlice

    func listRecords(collection: String, after: String?, limit: Int, filters: [(field: String, value: String)]) async throws -> RecordPage

    func record(collection: String, id: String) async throws -> Record?

    /// Reads the record, lets `decide` choose the change (it may throw to refuse, and nothing
    /// is written), writes it with its change event on `collection:C`, all in one transaction.
    func writeRecord(
        collection: String,
        id: String,
        history: HistoryPolicy,
        decide: @escaping @Sendable (Record?) throws -> RecordChange,
        onCommit: @escaping @Sendable (ChannelMessage) -> Void
    ) async throws -> RecordWriteResult

    /// Deletes history past its age limit and expired idempotency keys; returns how many messages went.
    func pruneExpired(nowMillis: Int64) async throws -> Int

    /// Checks that the database answers.
    func ping() async throws
}

public struct HistorySlice: Sendable {
    public var messages: [ChannelMessage]
    public var position: Position
    public var complete: Bool

    public init(messages: [ChannelMessage], position: Position, complete: Bool) {
        self.messages = messages
        self.position = position
        self.complete = complete
    }
}

public struct PublishResult: Sendable {
    public var position: Position
    /// True when the idempotency key was seen before and nothing was published.
    public var duplicate: Bool

    public init(position: Position, duplicate: Bool) {
        self.position = position
        self.duplicate = duplicate
    }
}

public enum Idempotency {
    /// How long a publish's idempotency key is remembered (SPEC: 5 minutes).
    public static let windowMillis: Int64 = 5 * 60 * 1000
}
