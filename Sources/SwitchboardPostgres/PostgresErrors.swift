import NIOCore
import PostgresNIO
import SwitchboardCore
import SwitchboardStore

/// Which database failures mean "not reachable now, try again" (SPEC section 7: 503
/// `unavailable`, never a false success) and which are bugs.
enum PostgresErrors {
    /// Runs `operation`, giving up after `timeout`; a lost, refused or silent database
    /// becomes `StoreUnavailable`. Refusals of the caller's own (`ProtocolError`) pass through.
    static func guarding<T: Sendable>(timeout: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await withThrowingTaskGroup(of: T.self) { group in
                group.addTask { try await operation() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw StoreUnavailable("the database did not answer within \(timeout)")
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
        } catch let error as ProtocolError {
            throw error
        } catch let error as StoreUnavailable {
            throw error
        } catch {
            if let refusal = refusal(in: error) { throw refusal }
            if isUnavailable(error) { throw StoreUnavailable("the database is not reachable: \(describe(error))") }
            throw error
        }
    }

    /// A `ProtocolError` thrown inside a transaction (a failed precondition), unwrapped.
    private static func refusal(in error: any Error) -> ProtocolError? {
        if let error = error as? ProtocolError { return error }
        if let error = error as? PostgresTransactionError, let inner = error.closureError { return refusal(in: inner) }
        return nil
    }

    static func isUnavailable(_ error: any Error) -> Bool {
        if error is CancellationError { return true }
        if let error = error as? PostgresTransactionError {
            return [error.beginError, error.closureError, error.commitError].contains { $0.map(isUnavailable) ?? false }
        }
        guard let error = error as? PSQLError else {
            // NIO's connect and channel errors: nothing answered.
            return error is ChannelError || error is IOError || String(describing: type(of: error)).contains("Connect")
        }
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed,
             .queryCancelled, .listenFailed:
            return true
        case .server:
            // Class 08: connection exception; 57P01-57P03: shutdown, crash, cannot connect now;
            // 53: insufficient resources; 25P03: idle-in-transaction timeout.
            let state = error.serverInfo?[.sqlState] ?? ""
            return state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53") || state == "25P03"
        default:
            return false
        }
    }

    /// A deadlock (40P01) or a serialization failure (40001): PostgreSQL rolled the
    /// transaction back, and running it again is safe.
    static func isRetryable(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, error.code == .server else { return false }
        let state = error.serverInfo?[.sqlState] ?? ""
        return state == "40P01" || state == "40001"
    }

    /// One line for logs and errors, without the query or its values.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return message }
            return "\(error.code)"
        }
        if let error = error as? PostgresTransactionError {
            return [error.beginError, error.closureError, error.commitError].compactMap { $0.map(describe) }.first ?? "transaction failed"
        }
        return "\(error)"
    }
}
