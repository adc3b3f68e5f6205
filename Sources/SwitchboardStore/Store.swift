import SwitchboardCore

/// Durable records, channel offsets and history: the one source of truth (SPEC sections 1,
/// 2 and 7). An implementation assigns each channel's offsets 1, 2, 3, … in commit order and
/// hands every committed message to the feed registered with `attach(feed:)`; it never calls
/// the hub itself. Messages may reach the feed late, twice or out of order (from other
/// nodes); the node's sequencer puts them in order and fills gaps with `messages(…)`.
public protocol Store: Sendable {
    /// Registers the node's feed, once, before the first write.
    func attach(feed: any StoreFeed)

    /// Runs what the store needs in the background (listeners, pollers) until cancelled or
    /// a graceful shutdown; returns at once for a store that needs nothing.
    func run() async throws

    /// Appends a message at the channel's next offset; answers after the commit. With an
    /// idempotency key seen on this channel within `Idempotency.windowMillis`, nothing is
    /// published and the first position is returned.
    func publish(channel: String, data: String, idempotencyKey: String?, history: HistoryPolicy) async throws -> PublishResult

    /// The channel's current position (offset 0 for a channel that never had a message).
    func position(channel: String) async throws -> Position

    /// Messages after `after` (up to `limit`), or the latest `limit` without it, read in one
    /// snapshot with the channel's position. Only what `history` keeps is served. `complete`
    /// says whether every message after `after` up to the position is in the result or
    /// beyond the limit (none pruned).
    func history(channel: String, after: Int64?, limit: Int, history: HistoryPolicy) async throws -> HistorySlice

    /// Committed messages in `(after, through]` that are still stored, in offset order, for
    /// filling a gap in live delivery; history limits do not apply.
    func messages(channel: String, after: Int64, through: Int64) async throws -> [ChannelMessage]

    func listRecords(collection: String, after: String?, limit: Int, filters: [(field: String, value: String)]) async throws -> RecordPage

    func record(collection: String, id: String) async throws -> Record?

    /// Reads the record, lets `decide` choose the change (it may throw to refuse, and nothing
    /// is written), writes it with its change event on `collection:C`, all in one transaction.
    func writeRecord(
        collection: String,
        id: String,
        history: HistoryPolicy,
        decide: @escaping @Sendable (Record?) throws -> RecordChange
    ) async throws -> RecordWriteResult

    /// Deletes history past its limits and expired idempotency keys; returns how many messages went.
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

    /// Whether the slice resumes `since`: same epoch, nothing pruned, and it reaches the position.
    public func recovers(_ since: Position) -> Bool {
        since.epoch == position.epoch && complete
            && (since.offset == position.offset || messages.last?.offset == position.offset)
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
    /// How long a publish's idempotency key is remembered (SPEC section 2: 5 minutes).
    public static let windowMillis: Int64 = 5 * 60 * 1000
}

/// The database could not be reached or did not answer in time: the request may be retried
/// (SPEC section 7: 503 `unavailable`, never a false success).
public struct StoreUnavailable: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum StoreError: Error, CustomStringConvertible {
    case corrupt(String)
    public var description: String {
        switch self {
        case .corrupt(let m): "database content is corrupt: \(m)"
        }
    }
}

/// Epoch strings: random, short, and never containing `:`.
public enum Epoch {
    public static func random() -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyz23456789")
        return String((0..<8).map { _ in alphabet.randomElement()! })
    }
}
