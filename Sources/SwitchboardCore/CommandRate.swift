/// A connection's command rate (SPEC section 5), as every transport applies it: a token
/// bucket of `perSecond` commands (burst `burst`); past it each command is refused, and once
/// another burst has been refused in a row the connection closes (4129).
public struct CommandRate: Sendable {
    public enum Verdict: Sendable, Equatable {
        case run, refuse, close
    }

    private var bucket: TokenBucket
    private let burst: Int
    private var refusedInARow = 0

    public init(perSecond: Int, burst: Int, now: ContinuousClock.Instant = .now) {
        self.bucket = TokenBucket(rate: perSecond, burst: burst, now: now)
        self.burst = burst
    }

    /// What to do with the next command.
    public mutating func admit(now: ContinuousClock.Instant = .now) -> Verdict {
        if bucket.take(now: now) {
            refusedInARow = 0
            return .run
        }
        refusedInARow += 1
        return refusedInARow > burst ? .close : .refuse
    }
}
