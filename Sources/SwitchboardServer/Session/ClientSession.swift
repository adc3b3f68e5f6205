import Foundation
import Logging
import Synchronization
import SwitchboardCore
import SwitchboardStore

/// One client, whatever carries it (`/v1/ws`, Socket.IO over WebSocket or long-polling, an
/// SSE stream): who it is, what it is subscribed to, and every command it may run, each
/// checked by `Access`. Transports are thin adapters: they parse their wire format into
/// `SessionCommand`s, and write what the session hands their `SessionOutput`.
final class ClientSession: Subscriber {
    let clientID: String
    private let node: Node
    private let authenticator: Authenticator
    private let logger: Logger
    /// Most channels at once (`limits.subscriptions`).
    private let maxSubscriptions: Int
    private let output: any SessionOutput

    private struct State {
        var identity: Identity
        var channels: Set<String> = []
        /// The connection is gone: no new subscriptions.
        var ended = false
    }

    private let state: Mutex<State>

    init(
        identity: Identity, node: Node, authenticator: Authenticator, maxSubscriptions: Int,
        logger: Logger, output: any SessionOutput
    ) {
        self.clientID = Self.makeClientID()
        self.node = node
        self.authenticator = authenticator
        self.maxSubscriptions = maxSubscriptions
        self.logger = logger
        self.output = output
        self.state = Mutex(State(identity: identity))
    }

    var identity: Identity { state.withLock { $0.identity } }
    var access: Access { node.access(identity) }

    // MARK: Commands

    /// Runs `command`. `answer` gets its result object (JSON) or its refusal, exactly once,
    /// before anything the command sends (a subscription's missed messages follow it).
    func run(_ command: SessionCommand, answer: @escaping (Result<String, ProtocolError>) -> Void) async {
        do {
            switch command {
            case .ping:
                answer(.success("{}"))
            case .subscribe(let channel, let since, let presence):
                _ = try await subscribe(channel, since: since, presence: presence) { position, recovered in
                    answer(.success(Self.subscribed(channel, position: position, recovered: recovered).serialized))
                }
            case .unsubscribe(let channel):
                unsubscribe(channel)
                answer(.success("{}"))
            case .publish(let channel, let data, let key):
                let result = try await publish(channel, data: data, idempotencyKey: key)
                answer(.success(JSONValue.object(["epoch": .string(result.position.epoch), "offset": .int(result.position.offset)]).serialized))
            case .history(let channel, let since, let limit):
                try access.check(.history, channel: channel)
                answer(.success(try await node.historyJSON(channel: channel, since: since, limit: limit)))
            case .presence(let channel):
                let members = try await members(channel)
                answer(.success(JSONValue.object(["members": .array(members.map(\.json))]).serialized))
            case .auth(let token):
                do {
                    let verified = try await authenticator.identify(token)
                    setIdentity(verified)
                    answer(.success(JSONValue.object(["user": verified.user.map(JSONValue.string) ?? .null]).serialized))
                } catch {
                    answer(.failure(error))
                    output.close(.unauthorized(error.message))
                }
            case .refresh(let token):
                let expires = try await refresh(token)
                answer(.success(JSONValue.object(["expires_at": expires.map { .string(Timestamp.format(milliseconds: $0)) } ?? .null]).serialized))
            }
        } catch let error as ProtocolError {
            answer(.failure(error))
        } catch {
            logger.error("command failed", metadata: ["client": "\(clientID)", "command": "\(command.name)", "error": "\(error)"])
            answer(.failure(ProtocolError(.internalError, "the server failed to run this command")))
        }
    }

    /// `{"channel","epoch","offset","recovered"}`: what a subscription answers.
    static func subscribed(_ channel: String, position: Position, recovered: Bool) -> JSONValue {
        ["channel": .string(channel), "epoch": .string(position.epoch), "offset": .int(position.offset), "recovered": .bool(recovered)]
    }

    /// Subscribes with catch-up (`Node.subscribe`): `reply` runs before the missed messages.
    @discardableResult
    func subscribe(
        _ channel: String, since: Position?, presence: Bool = false, reply: ((Position, Bool) -> Void)? = nil
    ) async throws -> Node.Subscription {
        try access.check(.subscribe(presence: presence), channel: channel)
        let limit = maxSubscriptions
        let added = try state.withLock { s throws(ProtocolError) -> Bool in
            if s.channels.contains(channel) || s.ended { return false }
            guard s.channels.count < limit else {
                throw ProtocolError(.tooLarge, "subscription limit reached: at most \(limit) channels a connection")
            }
            s.channels.insert(channel)
            return true
        }
        guard added else { throw ProtocolError(.conflict, "already subscribed to \"\(channel)\"") }
        let subscription: Node.Subscription
        do {
            let identity = self.identity
            let member = Member(client: clientID, user: identity.user, info: identity.info)
            let output = self.output
            subscription = try await node.subscribe(
                self, channel: channel, since: since, member: member, wantsPresence: presence
            ) { position, recovered in
                // What the client holds now: `since` when the missed messages follow, else
                // the channel's position (SPEC section 4: ids that resume gap-free).
                output.subscribed(channel, at: recovered ? since ?? position : position)
                reply?(position, recovered)
            }
        } catch {
            state.withLock { _ = $0.channels.remove(channel) }
            throw error
        }
        // The connection ended while this subscription was being set up: undo it.
        if state.withLock({ $0.ended }) { node.unsubscribe(self, channel: channel) }
        if !subscription.live { output.close(.slowCatchUp) }
        return subscription
    }

    func unsubscribe(_ channel: String) {
        if state.withLock({ $0.channels.remove(channel) }) != nil {
            node.unsubscribe(self, channel: channel)
            output.unsubscribed(channel)
        }
    }

    func publish(_ channel: String, data: JSONValue, idempotencyKey: String?) async throws -> PublishResult {
        try access.check(.publish, channel: channel)
        return try await node.publish(channel: channel, data: data, idempotencyKey: idempotencyKey)
    }

    func members(_ channel: String) async throws -> [Member] {
        try access.check(.presence, channel: channel)
        return try await node.members(channel: channel)
    }

    /// A new token for the same user, keeping every subscription; returns when it expires.
    func refresh(_ token: String) async throws -> Int64? {
        let verified = try await authenticator.identify(token)
        let current = identity
        if case .token = current.role, verified.user != current.user {
            throw ProtocolError.forbidden("refresh must be for the same user (\"\(current.user ?? "")\")")
        }
        setIdentity(verified)
        return verified.expiresAtMillis
    }

    private func setIdentity(_ identity: Identity) {
        state.withLock { $0.identity = identity }
        output.expires(atMillis: identity.expiresAtMillis)
    }

    /// The connection is gone: leave every channel.
    func ended() {
        let channels = state.withLock { s in
            s.ended = true
            defer { s.channels = [] }
            return s.channels
        }
        for channel in channels { node.unsubscribe(self, channel: channel) }
    }

    // MARK: Subscriber

    func deliver(_ message: ChannelMessage, frames: inout MessageFrames) {
        output.deliver(message, frames: &frames)
    }

    func presence(_ change: PresenceChange) {
        output.presence(change)
    }

    func waitForRoom() async {
        await output.waitForRoom()
    }

    func missed(channel: String) {
        output.close(.missed(channel: channel))
    }

    private static func makeClientID() -> String {
        let hex = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// How a session reaches its client: what each transport implements.
protocol SessionOutput: AnyObject, Sendable {
    /// A channel message (called on the hub's thread: enqueue, never block).
    func deliver(_ message: ChannelMessage, frames: inout MessageFrames)
    /// A member joined or left a channel the client asked presence of.
    func presence(_ change: PresenceChange)
    /// End the connection for `reason`, after what is already queued.
    func close(_ reason: CloseReason)
    /// Waits until the connection has room for more (catch-up pacing).
    func waitForRoom() async
    /// The credentials now expire at this time (or never): close with 4101 then.
    func expires(atMillis: Int64?)
    /// A subscription starts with the client at `position` (its `since` when the missed
    /// messages follow, else the channel's position); its answer and those messages follow.
    func subscribed(_ channel: String, at position: Position)
    /// The client left `channel`.
    func unsubscribed(_ channel: String)
}

extension SessionOutput {
    /// Only transports that report positions themselves (SSE ids, Socket.IO recovery) track them.
    func subscribed(_ channel: String, at position: Position) {}
    func unsubscribed(_ channel: String) {}
}
