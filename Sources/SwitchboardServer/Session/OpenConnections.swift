import ServiceLifecycle
import Synchronization

/// A long-lived connection a graceful shutdown must end (a WebSocket, a Socket.IO session).
protocol DrainableConnection: AnyObject, Sendable {
    /// Ends the connection with 1012 after what is queued: the client reconnects at once.
    func closeForRestart()
    /// Drops the connection now.
    func hangUp()
}

/// The open long-lived connections, for a graceful shutdown. Connections have no task of
/// their own (that would cost memory on every idle connection), so this service is what
/// closes them with 1012 once the server has stopped accepting, and waits until they are gone.
final class OpenConnections: Service, Sendable {
    private struct State {
        var sessions: [ObjectIdentifier: any DrainableConnection] = [:]
        var draining = false
        var emptied: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    init() {}

    /// Adds a new session; false once draining (the caller closes it at once).
    func add(_ session: any DrainableConnection) -> Bool {
        state.withLock { s in
            guard !s.draining else { return false }
            s.sessions[ObjectIdentifier(session)] = session
            return true
        }
    }

    func remove(_ session: any DrainableConnection) {
        let emptied = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.sessions.removeValue(forKey: ObjectIdentifier(session))
            guard s.sessions.isEmpty else { return nil }
            defer { s.emptied = nil }
            return s.emptied
        }
        emptied?.resume()
    }

    /// Waits for a graceful shutdown, then closes every session with 1012 after what is
    /// queued for it and waits until all have closed. Cancelled, it drops them.
    func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            closeAll { $0.hangUp() }
            return
        }
        closeAll { $0.closeForRestart() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLock { s -> Bool in
                    if s.sessions.isEmpty { return true }
                    s.emptied = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            closeAll { $0.hangUp() }
            let emptied = state.withLock { s in
                defer { s.emptied = nil }
                return s.emptied
            }
            emptied?.resume()
        }
    }

    private func closeAll(_ close: (any DrainableConnection) -> Void) {
        let sessions = state.withLock { s in
            s.draining = true
            return Array(s.sessions.values)
        }
        sessions.forEach(close)
    }
}
