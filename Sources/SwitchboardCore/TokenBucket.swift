/// A token bucket: `rate` tokens a second, holding at most `burst`. Time is passed in, so
/// the bucket is plain data that the caller keeps under its own lock.
public struct TokenBucket: Sendable {
    public let rate: Double
    public let burst: Double
    private var tokens: Double
    private var updated: ContinuousClock.Instant

    public init(rate: Int, burst: Int, now: ContinuousClock.Instant = .now) {
        self.rate = Double(rate)
        self.burst = Double(max(burst, 1))
        self.tokens = Double(max(burst, 1))
        self.updated = now
    }

    /// Takes a token if there is one.
    public mutating func take(now: ContinuousClock.Instant = .now) -> Bool {
        refill(now: now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    public mutating func isFull(now: ContinuousClock.Instant = .now) -> Bool {
        refill(now: now)
        return tokens >= burst
    }

    private mutating func refill(now: ContinuousClock.Instant) {
        let elapsed = now - updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        if seconds > 0 {
            tokens = min(burst, tokens + seconds * rate)
            updated = now
        }
    }
}
