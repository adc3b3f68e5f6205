/// When to try again after a lost connection: "full jitter" exponential backoff (a random
/// delay between zero and a cap that doubles with each failed attempt), so that thousands
/// of clients dropped by one server restart do not all come back in the same instant.
public struct Backoff: Sendable, Equatable {
    /// The cap of the first retry.
    public var base: Duration
    /// The largest cap.
    public var maximum: Duration

    public init(base: Duration = .milliseconds(250), maximum: Duration = .seconds(10)) {
        self.base = base
        self.maximum = maximum
    }

    /// The cap for retry `attempt` (0 for the first): `base × 2^attempt`, at most `maximum`.
    public func cap(attempt: Int) -> Duration {
        let factor = Double(1 << min(max(attempt, 0), 30))
        return min(maximum, base * factor)
    }

    /// A delay for retry `attempt`, uniform in `0…cap(attempt)`.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let cap = cap(attempt: attempt)
        let nanoseconds = cap.components.seconds * 1_000_000_000 + cap.components.attoseconds / 1_000_000_000
        return .nanoseconds(Int64.random(in: 0...max(0, nanoseconds), using: &generator))
    }

    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }
}
