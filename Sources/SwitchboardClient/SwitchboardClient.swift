import Foundation

/// A Switchboard client for iOS, macOS, tvOS and Linux (SPEC section 3, over `/v1/ws`):
///
/// ```swift
/// let client = SwitchboardClient(url: url, token: { try await auth.freshToken() })
/// for await state in client.states { … }
/// let prices = try await client.subscribe("prices", since: saved)
/// for try await event in prices { … }          // resumes by offset across reconnects, never twice
/// let position = try await client.publish("chat:lobby", Message(text: "hi"))
/// for try await stocks in client.collection("stocks", as: Stock.self).live() { … }
/// ```
///
/// It connects at once and keeps reconnecting, by close code: 4000–4099 stop and report;
/// 4100–4199 back off and resume (4101 asks the token provider first, as every attempt
/// does); 1001 and 1012 reconnect at once; anything else backs off (full jitter). Every
/// subscription resumes from its last offset; one whose position fell out of history gets
/// a `.reset` and goes on. Every method may be called from any task.
public final class SwitchboardClient: Sendable {
    let engine: ClientEngine

    /// - Parameters:
    ///   - url: the server (`http://`, `https://`, `ws://` or `wss://`; `/v1/ws` is added).
    ///   - token: called before every connection and before the token expires; nil for none.
    public init(url: URL, token: (@Sendable () async throws -> String?)? = nil, configuration: ClientConfiguration = ClientConfiguration()) {
        engine = ClientEngine(url: url, token: token, configuration: configuration)
        let engine = self.engine
        Task { await engine.start() }
    }

    /// The connection's states, the current one first.
    public var states: AsyncStream<ConnectionState> {
        let engine = self.engine
        let (stream, continuation) = AsyncStream.makeStream(of: ConnectionState.self)
        let forward = Task {
            for await state in await engine.states() { continuation.yield(state) }
            continuation.finish()
        }
        continuation.onTermination = { _ in forward.cancel() }
        return stream
    }

    /// Subscribes to `channel`: after `since` when given (the missed messages first), else
    /// from now. Throws `refused` when not allowed. The subscription ends when its loop
    /// ends or is cancelled, or with `cancel()`.
    public func subscribe(_ channel: String, since: Position? = nil, presence: Bool = false) async throws -> Subscription {
        _ = try Names.channel(channel)
        let state = try await engine.subscribe(channel, since: since, presence: presence)
        return Subscription(state: state, engine: engine)
    }

    /// Publishes `value` (encoded as JSON) on `channel`; returns its position once committed.
    /// The idempotency key (a new one unless given) is kept across retries, so a publish
    /// retried after a lost connection is published once.
    @discardableResult
    public func publish<T: Encodable & Sendable>(_ channel: String, _ value: T, idempotencyKey: String? = nil) async throws -> Position {
        let data = try JSONValue.parse(Array(try JSONEncoder().encode(value)))
        return try await publish(channel, json: data, idempotencyKey: idempotencyKey)
    }

    @discardableResult
    public func publish(_ channel: String, json data: JSONValue, idempotencyKey: String? = nil) async throws -> Position {
        let key = idempotencyKey ?? UUID().uuidString
        let result = try await engine.request(.publish, ["channel": .string(channel), "data": data, "idempotency_key": .string(key)])
        guard let position = Position(json: result) else { throw SwitchboardClientError.timedOut("publish: no position in the reply") }
        return position
    }

    /// History of `channel`: after `since` (up to `limit`), or the latest `limit`.
    public func history(_ channel: String, since: Position? = nil, limit: Int = 100) async throws -> History {
        var fields: [String: JSONValue] = ["channel": .string(channel), "limit": .int(Int64(limit))]
        if let since { fields["since"] = ["epoch": .string(since.epoch), "offset": .int(since.offset)] }
        let result = try await engine.request(.history, fields)
        return History(json: result)
    }

    /// The members of a presence channel, on every node.
    public func presence(_ channel: String) async throws -> [Member] {
        let result = try await engine.request(.presence, ["channel": .string(channel)])
        return result["members"]?.arrayValue?.compactMap(Member.init(json:)) ?? []
    }

    /// A collection's records kept up to date: `live()` yields them all, then again after
    /// every change, gap-free (a snapshot with its offset, then the change feed from there).
    public func collection<T: Decodable & Sendable>(_ name: String, as type: T.Type) -> LiveCollection<T> {
        LiveCollection(name: name, client: self)
    }

    /// For an app coming back to the foreground: reconnect now instead of after the backoff.
    public func reconnectNow() async {
        await engine.reconnectNow()
    }

    /// Stops: the connection closes, subscriptions end, calls waiting fail. `connect()` starts again.
    public func disconnect() async {
        await engine.disconnect()
    }

    /// Starts again after `disconnect()`; subscriptions must be made again.
    public func connect() async {
        await engine.start()
    }
}

/// A channel's events in offset order: an `AsyncSequence` that ends when its loop does.
public struct Subscription: AsyncSequence, Sendable {
    public typealias Element = ChannelEvent

    let state: ClientEngine.SubscriptionState
    let handle: Handle

    /// Unsubscribes when the last copy of the subscription (and its iterators) goes.
    final class Handle: Sendable {
        let engine: ClientEngine
        let channel: String
        let id: UUID

        init(engine: ClientEngine, channel: String, id: UUID) {
            self.engine = engine
            self.channel = channel
            self.id = id
        }

        func cancel() {
            let (engine, channel, id) = (self.engine, self.channel, self.id)
            Task { await engine.unsubscribe(channel, handle: id) }
        }

        /// Unsubscribes and returns once the channel is free to subscribe to again.
        func unsubscribe() async {
            await engine.unsubscribe(channel, handle: id)
        }

        deinit { cancel() }
    }

    init(state: ClientEngine.SubscriptionState, engine: ClientEngine) {
        self.state = state
        self.handle = Handle(engine: engine, channel: state.channel, id: state.handleID)
    }

    public var channel: String { state.channel }

    /// Unsubscribes now; the loop ends after what was already received.
    public func cancel() {
        handle.cancel()
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let state: ClientEngine.SubscriptionState
        let handle: Handle

        public mutating func next() async throws -> ChannelEvent? {
            let (buffer, handle) = (state.buffer, self.handle)
            return try await withTaskCancellationHandler {
                try await buffer.next()
            } onCancel: {
                handle.cancel()
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(state: state, handle: handle)
    }
}

/// History of a channel.
public struct History: Sendable, Equatable {
    public var messages: [ReceivedMessage]
    /// The channel's position when read.
    public var position: Position
    /// With `since`: false when messages after it are gone (reload state instead).
    public var recovered: Bool?

    init(json: JSONValue) {
        position = Position(json: json) ?? Position(epoch: "", offset: 0)
        recovered = json["recovered"]?.boolValue
        messages = (json["messages"]?.arrayValue ?? []).compactMap { frame in
            guard case .message(let message)? = try? ServerFrame.decode(frame) else { return nil }
            return message
        }
    }
}
