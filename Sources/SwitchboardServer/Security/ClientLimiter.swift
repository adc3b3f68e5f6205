import NIOCore
import Synchronization
import SwitchboardCore

/// Per-IP limits on long-lived connections and on handshakes a second (SPEC section 5),
/// for every client address, loopback included (behind a proxy, the address is the one
/// `ClientAddress` finds in the forwarding headers).
public final class ClientLimiter: Sendable {
    private struct PerIP {
        var connections = 0
        var handshakes: TokenBucket
    }

    private let limits: Limits
    private let state = Mutex<[String: PerIP]>([:])

    public init(limits: Limits) {
        self.limits = limits
    }

    /// Checks a handshake from `ip` and counts it; nil if allowed, else the reason.
    public func admitHandshake(ip: String) -> ProtocolError? {
        return state.withLock { table in
            var entry = table[ip] ?? PerIP(handshakes: TokenBucket(rate: limits.handshakesPerSecond, burst: limits.handshakesPerSecond * 2))
            defer { table[ip] = entry }
            if entry.connections >= limits.connectionsPerIP {
                return ProtocolError(.rateLimited, "too many connections from \(ip): at most \(limits.connectionsPerIP)")
            }
            let allowed = entry.handshakes.take()
            if !allowed {
                return ProtocolError(.rateLimited, "too many handshakes from \(ip): at most \(limits.handshakesPerSecond) a second")
            }
            return nil
        }
    }

    public func connectionOpened(ip: String) {
        state.withLock { table in
            table[ip, default: PerIP(handshakes: TokenBucket(rate: limits.handshakesPerSecond, burst: limits.handshakesPerSecond * 2))].connections += 1
        }
    }

    public func connectionClosed(ip: String) {
        state.withLock { table in
            table[ip]?.connections -= 1
        }
    }

    /// Forgets addresses with no connections whose handshake bucket has refilled, so the
    /// table stays small; forgetting them sooner would let a client reset its bucket.
    public func sweep() {
        state.withLock { table in
            table = table.filter { _, entry in
                var bucket = entry.handshakes
                return entry.connections > 0 || !bucket.isFull()
            }
        }
    }
}
