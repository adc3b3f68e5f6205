import Testing
import SwitchboardCore

/// The sequencer hands the hub each offset once, in order, whatever order the feed brings them in.
@Suite("Channel sequencer")
struct ChannelSequencerTests {
    static func message(_ offset: Int64, epoch: String = "e1") -> ChannelMessage {
        ChannelMessage(channel: "c", epoch: epoch, offset: offset, data: "\(offset)")
    }

    /// Runs the sequencer over `offsets` from the feed, answering every fill from `store`
    /// (the offsets it still has) at once; returns what reached the hub and what was lost.
    static func run(after start: Int64, feed offsets: [Int64], store: Set<Int64>) -> (delivered: [Int64], lost: [ClosedRange<Int64>]) {
        var sequencer = ChannelSequencer()
        var delivered: [Int64] = []
        var lost: [ClosedRange<Int64>] = []
        func apply(_ actions: ChannelSequencer.Actions) {
            delivered += actions.deliver.map(\.offset)
            if let range = actions.lost { lost.append(range) }
            if let fill = actions.fill, let range = sequencer.pendingFill(fill) {
                apply(sequencer.filled(range.filter(store.contains).map { message($0) }, range: range))
            }
        }
        apply(sequencer.establish(at: Position(epoch: "e1", offset: start)).actions)
        for offset in offsets { apply(sequencer.receive(message(offset))) }
        return (delivered, lost)
    }

    @Test("in order: each message goes straight through")
    func inOrder() {
        let result = Self.run(after: 0, feed: [1, 2, 3, 4], store: [])
        #expect(result.delivered == [1, 2, 3, 4])
        #expect(result.lost.isEmpty)
    }

    @Test("twice: a duplicate is dropped")
    func duplicates() {
        let result = Self.run(after: 0, feed: [1, 2, 2, 1, 3, 3], store: [])
        #expect(result.delivered == [1, 2, 3])
    }

    @Test("out of order: a higher offset waits for the lower ones, then all go out in order")
    func outOfOrder() {
        var sequencer = ChannelSequencer()
        _ = sequencer.establish(at: Position(epoch: "e1", offset: 0))
        let early = sequencer.receive(Self.message(3))
        #expect(early.deliver.isEmpty)
        #expect(early.fill == 1...3)
        #expect(sequencer.receive(Self.message(2)).deliver.isEmpty)
        // The late notification came before the fill was read: the fill is no longer needed.
        #expect(sequencer.receive(Self.message(1)).deliver.map(\.offset) == [1, 2, 3])
        #expect(sequencer.pendingFill(1...3) == nil)
        #expect(sequencer.receive(Self.message(4)).deliver.map(\.offset) == [4])
    }

    @Test("a hole is read from the store, and delivery goes on in order")
    func holeFilledFromStore() {
        let result = Self.run(after: 10, feed: [11, 14, 15, 12, 16], store: [12, 13])
        #expect(result.delivered == [11, 12, 13, 14, 15, 16])
        #expect(result.lost.isEmpty)
    }

    @Test("what the store no longer has is reported lost, never silently skipped")
    func holeGoneFromStore() {
        let result = Self.run(after: 0, feed: [1, 5, 6], store: [4])
        #expect(result.delivered == [1, 4, 5, 6])
        #expect(result.lost == [2...3])
    }

    @Test("messages before establishing are held; those at or below the snapshot are dropped")
    func beforeEstablish() {
        var sequencer = ChannelSequencer()
        #expect(sequencer.receive(Self.message(5)).deliver.isEmpty)
        #expect(sequencer.receive(Self.message(7)).deliver.isEmpty)
        let (after, actions) = sequencer.establish(at: Position(epoch: "e1", offset: 5))
        #expect(after == 5)
        #expect(actions.deliver.isEmpty)
        #expect(actions.fill == 6...7)
        // A second snapshot does not move delivery back; its subscription reads again.
        #expect(sequencer.establish(at: Position(epoch: "e1", offset: 3)).after == 5)
    }

    @Test("a hint of a higher offset (a large message, a poll) asks for a fill")
    func reachedAsksForFill() {
        var sequencer = ChannelSequencer()
        _ = sequencer.establish(at: Position(epoch: "e1", offset: 2))
        #expect(sequencer.reached(2, epoch: "e1") == .none)
        let actions = sequencer.reached(5, epoch: "e1")
        #expect(actions.fill == 3...5)
        let filled = sequencer.filled([3, 4, 5].map { Self.message($0) }, range: 3...5)
        #expect(filled.deliver.map(\.offset) == [3, 4, 5])
        #expect(filled.fill == nil)
    }

    @Test("messages and hints of another epoch are ignored")
    func otherEpoch() {
        var sequencer = ChannelSequencer()
        _ = sequencer.establish(at: Position(epoch: "e1", offset: 0))
        #expect(sequencer.receive(Self.message(1, epoch: "e2")) == .none)
        #expect(sequencer.reached(9, epoch: "e2") == .none)
        #expect(sequencer.receive(Self.message(1)).deliver.count == 1)
    }

    @Test("a failed fill is asked for again; fills come in bounded batches")
    func failedAndBatchedFills() {
        var sequencer = ChannelSequencer()
        _ = sequencer.establish(at: Position(epoch: "e1", offset: 0))
        let first = sequencer.reached(2500, epoch: "e1").fill
        #expect(first == 1...ChannelSequencer.fillBatch)
        #expect(sequencer.reached(2600, epoch: "e1").fill == nil)  // One fill at a time.
        #expect(sequencer.fillFailed().fill == first)
        let range = first!
        let next = sequencer.filled(range.map { Self.message($0) }, range: range)
        #expect(next.deliver.count == Int(ChannelSequencer.fillBatch))
        #expect(next.fill == (ChannelSequencer.fillBatch + 1)...(2 * ChannelSequencer.fillBatch))
    }

    @Test("shuffled feeds with duplicates always come out as 1...N exactly once")
    func shuffled() {
        for seed in 0..<50 {
            var generator = SeededGenerator(seed: UInt64(seed))
            var feed = Array(Int64(1)...200) + (0..<40).map { _ in Int64.random(in: 1...200, using: &generator) }
            feed.shuffle(using: &generator)
            // Some messages never arrive; the store has them all.
            feed.removeAll { $0 % 17 == 0 }
            let result = Self.run(after: 0, feed: feed + [201], store: Set(1...201))
            #expect(result.delivered == Array(1...201), "seed \(seed)")
        }
    }
}

/// A small deterministic generator (SplitMix64), so a failing shuffle can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
