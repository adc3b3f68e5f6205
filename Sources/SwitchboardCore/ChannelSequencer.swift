/// Puts one channel's committed messages in offset order before they reach the hub.
///
/// Messages come from the store's feed: on one SQLite node always in order, in a cluster
/// late, twice or out of order (each node notifies after its own commit). The sequencer
/// hands the hub the next expected offset only: a lower one is a duplicate and dropped; a
/// higher one is held while the gap before it is read from the store (`fill`), and then all
/// go out in order. Offsets the store no longer has are reported as `lost`, so that the
/// channel's subscribers resume rather than silently skip them.
///
/// A value type that returns what to do, so it is tested without a store or a hub.
public struct ChannelSequencer: Sendable {
    public struct Actions: Sendable, Equatable {
        /// Hand these to the hub, in this order.
        public var deliver: [ChannelMessage] = []
        /// Read `(after, through]` from the store and pass it to `filled`.
        public var fill: ClosedRange<Int64>?
        /// These offsets are gone from the store: their subscribers must resume.
        public var lost: ClosedRange<Int64>?

        public init(deliver: [ChannelMessage] = [], fill: ClosedRange<Int64>? = nil, lost: ClosedRange<Int64>? = nil) {
            self.deliver = deliver
            self.fill = fill
            self.lost = lost
        }

        public static let none = Actions()
    }

    /// Most messages asked of the store in one fill.
    public static let fillBatch: Int64 = 1000

    public private(set) var epoch: String?
    /// The last offset handed to the hub; nil until `establish`.
    public private(set) var delivered: Int64?
    /// Messages ahead of `delivered + 1`, by offset.
    private var held: [Int64: ChannelMessage] = [:]
    /// The highest offset known to be committed.
    private var known: Int64 = 0
    /// A fill is being read.
    private var filling = false
    /// The highest `reached` before `establish`, with its epoch.
    private var earlyReach: (epoch: String, offset: Int64)?

    public init() {}

    /// Where delivery stands once established: a new subscriber that asks for nothing
    /// missed starts here, with no read of the store.
    public var position: Position? {
        guard let epoch, let delivered else { return nil }
        return Position(epoch: epoch, offset: delivered)
    }

    /// Starts delivery after `position` (a subscriber's snapshot). Messages that came before
    /// are held until now; those at or below `position` are dropped. Returns the actions and
    /// the offset delivery now starts after, which is above `position` when another
    /// subscription had already established the channel further on.
    public mutating func establish(at position: Position) -> (after: Int64, actions: Actions) {
        if let delivered { return (delivered, .none) }
        epoch = position.epoch
        delivered = position.offset
        held = held.filter { $0.key > position.offset && $0.value.epoch == position.epoch }
        if let early = earlyReach, early.epoch == position.epoch { known = early.offset }
        earlyReach = nil
        return (position.offset, advance())
    }

    /// A message from the feed.
    public mutating func receive(_ message: ChannelMessage) -> Actions {
        guard let delivered else {
            held[message.offset] = message
            return .none
        }
        guard message.epoch == epoch, message.offset > delivered else { return .none }
        known = max(known, message.offset)
        // The common case: the next one, nothing held.
        if message.offset == delivered + 1 && held.isEmpty {
            self.delivered = message.offset
            return Actions(deliver: [message], fill: fillNeeded())
        }
        held[message.offset] = message
        return advance()
    }

    /// The store says the channel has reached `offset`.
    public mutating func reached(_ offset: Int64, epoch: String) -> Actions {
        guard delivered != nil else {
            if offset > earlyReach?.offset ?? 0 { earlyReach = (epoch, offset) }
            return .none
        }
        guard epoch == self.epoch, offset > known else { return .none }
        known = offset
        return advance()
    }

    /// What a fill read: the stored messages of `range`, in order.
    public mutating func filled(_ messages: [ChannelMessage], range: ClosedRange<Int64>) -> Actions {
        filling = false
        guard let delivered else { return .none }
        for message in messages where message.offset > delivered && message.epoch == epoch {
            held[message.offset] = message
        }
        var actions = advance()
        // What the store did not return below the end of the range is gone: skip it and say so.
        if let now = self.delivered, now < range.upperBound {
            let nextHeld = held.keys.min() ?? (range.upperBound + 1)
            let gapEnd = min(nextHeld, range.upperBound + 1) - 1
            if gapEnd > now {
                self.delivered = gapEnd
                let more = advance()
                actions.deliver += more.deliver
                actions.fill = more.fill
                actions.lost = (now + 1)...gapEnd
            }
        }
        return actions
    }

    /// Before a fill is read (after a short wait, in which a late notification often arrives
    /// and makes it unnecessary): the range to read now, or nil when nothing is missing.
    public mutating func pendingFill(_ range: ClosedRange<Int64>) -> ClosedRange<Int64>? {
        guard let delivered else { return nil }
        if delivered < range.upperBound { return max(range.lowerBound, delivered + 1)...range.upperBound }
        filling = false
        return fillNeeded()
    }

    /// A fill could not be read (the database is away): it is asked for again.
    public mutating func fillFailed() -> Actions {
        filling = false
        return Actions(fill: fillNeeded())
    }

    /// Hands over what is contiguous, and asks for a fill when something known is missing.
    private mutating func advance() -> Actions {
        guard var next = delivered else { return .none }
        var out: [ChannelMessage] = []
        while let message = held.removeValue(forKey: next + 1) {
            out.append(message)
            next += 1
        }
        delivered = next
        if let highest = held.keys.max() { known = max(known, highest) }
        return Actions(deliver: out, fill: fillNeeded())
    }

    private mutating func fillNeeded() -> ClosedRange<Int64>? {
        guard !filling, let delivered, known > delivered else { return nil }
        filling = true
        return (delivered + 1)...min(known, delivered + Self.fillBatch)
    }
}
