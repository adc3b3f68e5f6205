import Foundation
import Logging
import NIOCore
import NIOSSL
import NIOWebSocket
import WSClient

/// The state behind a `SwitchboardClient`: one connection at a time, reconnected by close
/// code with backoff; the subscriptions, each resumed from its last offset; the commands
/// waiting for replies. An actor, so that every method is safe from any task.
actor ClientEngine {
    typealias TokenProvider = @Sendable () async throws -> String?

    struct ConnectionLost: Error {}

    private enum Pending {
        case request(CheckedContinuation<JSONValue, any Error>)
        case subscribe(String)
        /// A ping or a refresh nobody waits for.
        case ignored
    }

    final class SubscriptionState: Sendable {
        let channel: String
        let presence: Bool
        let buffer: EventBuffer<ChannelEvent>
        let handleID: UUID

        init(channel: String, presence: Bool, capacity: Int) {
            self.channel = channel
            self.presence = presence
            self.buffer = EventBuffer(capacity: capacity)
            self.handleID = UUID()
        }
    }

    private struct Subscribed {
        let state: SubscriptionState
        /// The last position given to the app (or the one to resume after).
        var last: Position?
        /// The connection it is subscribed on; nil while it is not.
        var connection: Int?
        /// The first `subscribe` call waits for its reply here.
        var ready: CheckedContinuation<Void, any Error>?
    }

    let url: String
    let restBase: String
    let configuration: ClientConfiguration
    private let tokenProvider: TokenProvider?
    private var logger: Logger { configuration.logger }

    private var state: ConnectionState = .connecting
    private var watchers: [UUID: AsyncStream<ConnectionState>.Continuation] = [:]
    private var stopped: DisconnectReason?
    private var loop: Task<Void, Never>?

    /// The current connection: its number, its writer, and when it last heard from the server.
    private var connection: Int?
    private var connections = 0
    private var writer: AsyncStream<String>.Continuation?
    private var lastInbound = ContinuousClock.now
    private var waitingForConnection: [CheckedContinuation<Int, any Error>] = []
    private var backoffSleep: CheckedContinuation<Void, Never>?
    private var currentToken: String?

    private var nextID: Int64 = 0
    private var pending: [Int64: Pending] = [:]
    private var subscriptions: [String: Subscribed] = [:]

    init(url: URL, token: TokenProvider?, configuration: ClientConfiguration) {
        var ws = url.absoluteString
        if ws.hasPrefix("http://") { ws = "ws://" + ws.dropFirst("http://".count) }
        if ws.hasPrefix("https://") { ws = "wss://" + ws.dropFirst("https://".count) }
        while ws.hasSuffix("/") { ws.removeLast() }
        if !ws.hasSuffix("/v1/ws") { ws += "/v1/ws" }
        self.url = ws
        var rest = String(ws.dropLast("/v1/ws".count))
        if rest.hasPrefix("ws://") { rest = "http://" + rest.dropFirst("ws://".count) }
        if rest.hasPrefix("wss://") { rest = "https://" + rest.dropFirst("wss://".count) }
        self.restBase = rest
        self.tokenProvider = token
        self.configuration = configuration
    }

    // MARK: States

    func states() -> AsyncStream<ConnectionState> {
        let (stream, continuation) = AsyncStream.makeStream(of: ConnectionState.self, bufferingPolicy: .bufferingNewest(16))
        let id = UUID()
        continuation.yield(state)
        watchers[id] = continuation
        continuation.onTermination = { _ in Task { await self.unwatch(id) } }
        return stream
    }

    private func unwatch(_ id: UUID) {
        watchers.removeValue(forKey: id)
    }

    private func set(_ new: ConnectionState) {
        guard new != state else { return }
        state = new
        for watcher in watchers.values { watcher.yield(new) }
    }

    // MARK: Starting and stopping

    func start() {
        guard loop == nil else { return }
        stopped = nil
        loop = Task { await self.run() }
    }

    /// Stops for good: the connection closes, subscriptions end, waiting calls fail.
    func disconnect() async {
        stop(.closedByClient)
        let task = loop
        loop = nil
        await task?.value
    }

    private func stop(_ reason: DisconnectReason) {
        guard stopped == nil else { return }
        stopped = reason
        writer?.finish()
        backoffSleep?.resume()
        backoffSleep = nil
        let error = SwitchboardClientError.stopped(reason)
        for waiter in waitingForConnection { waiter.resume(throwing: error) }
        waitingForConnection = []
        for (_, entry) in pending { if case .request(let continuation) = entry { continuation.resume(throwing: error) } }
        pending = [:]
        for (_, subscription) in subscriptions {
            subscription.ready?.resume(throwing: error)
            subscription.state.buffer.finish(throwing: reason == .closedByClient ? nil : error)
        }
        subscriptions = [:]
        set(.disconnected(reason))
    }

    /// Reconnects at once if waiting to; if connected, checks the connection with a ping and
    /// drops it if the server does not answer within two seconds (an app back from the
    /// background on another network).
    func reconnectNow() async {
        if let sleep = backoffSleep {
            backoffSleep = nil
            sleep.resume()
            return
        }
        guard connection != nil else { return }
        do {
            _ = try await request(.ping, [:], timeout: .seconds(2), retry: false)
        } catch {
            writer?.finish()
        }
    }

    // MARK: The connection loop

    private func run() async {
        var attempt = 0
        while stopped == nil && !Task.isCancelled {
            if attempt == 0 { set(.connecting) }
            var code: UInt16?
            let before = connections
            do {
                let token = try await tokenProvider?()
                currentToken = token
                var settings = WebSocketClientConfiguration(maxFrameSize: configuration.maxFrameSize)
                if let token { settings.additionalHeaders[.authorization] = "Bearer \(token)" }
                let tls: TLSConfiguration? = url.hasPrefix("wss://") ? .makeClientConfiguration() : nil
                let close = try await WebSocketClient.connect(url: url, configuration: settings, tlsConfiguration: tls, logger: logger) { inbound, outbound, _ in
                    try await self.session(inbound: inbound, outbound: outbound)
                }
                code = close.map { UInt16(webSocketErrorCode: $0.closeCode) }
            } catch {
                logger.debug("connection failed", metadata: ["error": "\(error)"])
            }
            lost()
            guard stopped == nil else { return }
            let reconnect = code.map(CloseReason.reconnect(forCode:)) ?? .withBackoff
            if let code, reconnect == .no, code != 1000 {
                stop(DisconnectReason(code: code, message: "closed by the server; not reconnecting"))
                return
            }
            // A connection that got as far as the welcome starts the backoff over.
            if connections > before { attempt = 0 }
            let delay: Duration = reconnect == .now ? .zero : configuration.backoff.delay(attempt: attempt)
            attempt += 1
            set(.reconnecting(after: delay))
            await sleepUnlessWoken(delay)
        }
    }

    private func sleepUnlessWoken(_ delay: Duration) async {
        guard delay > .zero else { return }
        let wake = Task { [weak self] in
            try? await Task.sleep(for: delay)
            await self?.wakeFromBackoff()
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if stopped != nil { continuation.resume() } else { backoffSleep = continuation }
        }
        wake.cancel()
    }

    private func wakeFromBackoff() {
        backoffSleep?.resume()
        backoffSleep = nil
    }

    /// One connection: the welcome, then every frame in order, with the writer, the
    /// watchdog and the token refresh beside it.
    private nonisolated func session(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let (stream, writer) = AsyncStream.makeStream(of: String.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await text in stream { try await outbound.write(.text(text)) }
                try? await outbound.close(.normalClosure, reason: nil)
            }
            var messages = inbound.messages(maxSize: configuration.maxFrameSize).makeAsyncIterator()
            guard case .text(let first)? = try await messages.next(), case .welcome(_, let heartbeat, _) = try ServerFrame.decode(first) else {
                writer.finish()
                throw ConnectionLost()
            }
            let id = await connected(writer: writer)
            group.addTask { await self.watchdog(connection: id, heartbeat: .seconds(max(1, heartbeat))) }
            group.addTask { await self.refreshToken(connection: id) }
            while let message = try await messages.next() {
                guard case .text(let text) = message else { continue }
                await handle(text, connection: id)
            }
            writer.finish()
            group.cancelAll()
        }
    }

    /// A connection is up: resubscribe every subscription from its last position.
    private func connected(writer: AsyncStream<String>.Continuation) -> Int {
        connections += 1
        let id = connections
        connection = id
        self.writer = writer
        lastInbound = .now
        set(.connected)
        for channel in subscriptions.keys.sorted() { sendSubscribe(channel) }
        for waiter in waitingForConnection { waiter.resume(returning: id) }
        waitingForConnection = []
        return id
    }

    /// The connection is gone: requests on it are retried on the next one.
    private func lost() {
        connection = nil
        writer = nil
        for (_, entry) in pending { if case .request(let continuation) = entry { continuation.resume(throwing: ConnectionLost()) } }
        pending = [:]
        for channel in subscriptions.keys { subscriptions[channel]?.connection = nil }
    }

    /// Pings every heartbeat; a server silent for two heartbeats is dropped.
    private func watchdog(connection id: Int, heartbeat: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: heartbeat)
            guard connection == id else { return }
            if ContinuousClock.now - lastInbound > heartbeat * 2 {
                logger.info("the server went silent; reconnecting")
                writer?.finish()
                return
            }
            send(.ping, [:], pending: .ignored)
        }
    }

    /// Refreshes the token a little before it expires, over the open connection.
    private func refreshToken(connection id: Int) async {
        guard configuration.refreshTokens, let tokenProvider else { return }
        while !Task.isCancelled, connection == id, let token = currentToken, let expiry = TokenExpiry.expiry(of: token) {
            let wait = TokenExpiry.refreshTime(expiry: expiry).timeIntervalSinceNow
            if wait > 0 { try? await Task.sleep(for: .milliseconds(Int64(wait * 1000))) }
            guard !Task.isCancelled, connection == id else { return }
            do {
                guard let fresh = try await tokenProvider(), fresh != token else { return }
                _ = try await request(.refresh, ["token": .string(fresh)], timeout: .seconds(10), retry: false)
                currentToken = fresh
            } catch {
                logger.info("token refresh failed; reconnecting with a new token", metadata: ["error": "\(error)"])
                if connection == id { writer?.finish() }
                return
            }
        }
    }

    // MARK: Frames from the server

    private func handle(_ text: String, connection connectionID: Int) async {
        lastInbound = .now
        let frame: ServerFrame
        do {
            frame = try ServerFrame.decode(text)
        } catch {
            logger.warning("unreadable frame from the server", metadata: ["error": "\(error)"])
            return
        }
        switch frame {
        case .reply(let id, let result):
            guard let entry = pending.removeValue(forKey: id) else { return }
            switch entry {
            case .request(let continuation): continuation.resume(with: result.mapError { $0 as any Error })
            case .subscribe(let channel):
                if let (buffer, reset) = subscribed(channel, result: result, connection: connectionID) { await buffer.push(reset) }
            case .ignored: break
            }
        case .message(let message):
            guard var subscription = subscriptions[message.channel], subscription.connection == connectionID else { return }
            // Resumed subscriptions never repeat what was given.
            if let last = subscription.last, last.epoch == message.position.epoch, message.position.offset <= last.offset { return }
            subscription.last = message.position
            subscriptions[message.channel] = subscription
            await subscription.state.buffer.push(.message(message))
        case .join(let channel, let member):
            await subscriptions[channel]?.state.buffer.push(.join(member))
        case .leave(let channel, let member):
            await subscriptions[channel]?.state.buffer.push(.leave(member))
        case .error(let error):
            logger.warning("the server reported an error", metadata: ["error": "\(error)"])
        case .welcome:
            break
        }
    }

    /// A subscribe's reply: from here messages follow. Not recovered: a `reset` to hand
    /// the app first (returned, with the buffer it goes to).
    private func subscribed(
        _ channel: String, result: Result<JSONValue, ProtocolError>, connection connectionID: Int
    ) -> (EventBuffer<ChannelEvent>, ChannelEvent)? {
        guard var subscription = subscriptions[channel] else { return nil }
        switch result {
        case .success(let value):
            guard let position = Position(json: value) else { return nil }
            let recovered = value["recovered"]?.boolValue ?? false
            var reset: ChannelEvent?
            if subscription.last == nil {
                subscription.last = position
            } else if !recovered {
                subscription.last = position
                reset = .reset(position)
            }
            subscription.connection = connectionID
            subscription.ready?.resume()
            subscription.ready = nil
            subscriptions[channel] = subscription
            return reset.map { (subscription.state.buffer, $0) }
        case .failure(let error) where error.code.temporary:
            // Unavailable or rate-limited: try again shortly on this connection.
            subscriptions[channel] = subscription
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(500))
                await self?.sendSubscribe(channel)
            }
            return nil
        case .failure(let error):
            subscriptions.removeValue(forKey: channel)
            subscription.ready?.resume(throwing: SwitchboardClientError.refused(error))
            subscription.state.buffer.finish(throwing: SwitchboardClientError.refused(error))
            return nil
        }
    }

    // MARK: Sending

    private func send(_ op: ClientCommand.Op, _ fields: [String: JSONValue], pending entry: Pending) -> Int64? {
        guard let writer else { return nil }
        nextID += 1
        pending[nextID] = entry
        writer.yield(ClientCommand.frame(id: nextID, op: op, fields))
        return nextID
    }

    private func sendSubscribe(_ channel: String) {
        guard let subscription = subscriptions[channel], subscription.connection == nil else { return }
        var fields: [String: JSONValue] = ["channel": .string(channel)]
        if let last = subscription.last { fields["since"] = ["epoch": .string(last.epoch), "offset": .int(last.offset)] }
        if subscription.state.presence { fields["presence"] = true }
        _ = send(.subscribe, fields, pending: .subscribe(channel))
    }

    /// Waits for a connection (up to `deadline`).
    private func waitForConnection() async throws -> Int {
        if let stopped { throw SwitchboardClientError.stopped(stopped) }
        if let connection { return connection }
        return try await withCheckedThrowingContinuation { waitingForConnection.append($0) }
    }

    /// Sends a command and returns its result: through lost connections (sent again on the
    /// next) and temporary refusals (`unavailable`, `rate_limited`), until `timeout`.
    func request(_ op: ClientCommand.Op, _ fields: [String: JSONValue], timeout: Duration? = nil, retry: Bool = true) async throws -> JSONValue {
        let deadline = ContinuousClock.now + (timeout ?? configuration.requestTimeout)
        var attempt = 0
        while true {
            do {
                return try await withDeadline(deadline, "\(op.rawValue)") {
                    _ = try await self.waitForConnection()
                    return try await self.sendAndWait(op, fields)
                }
            } catch is ConnectionLost where retry {
                continue
            } catch let error as ProtocolError where error.code.temporary && retry {
                try await Task.sleep(for: configuration.backoff.delay(attempt: attempt))
                attempt += 1
            } catch let error as ProtocolError {
                throw SwitchboardClientError.refused(error)
            }
        }
    }

    private func sendAndWait(_ op: ClientCommand.Op, _ fields: [String: JSONValue]) async throws -> JSONValue {
        try await withCheckedThrowingContinuation { continuation in
            if send(op, fields, pending: .request(continuation)) == nil { continuation.resume(throwing: ConnectionLost()) }
        }
    }

    private nonisolated func withDeadline<T: Sendable>(
        _ deadline: ContinuousClock.Instant, _ what: String, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(until: deadline)
                throw SwitchboardClientError.timedOut(what)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    // MARK: Subscriptions

    func subscribe(_ channel: String, since: Position?, presence: Bool) async throws -> SubscriptionState {
        if let stopped { throw SwitchboardClientError.stopped(stopped) }
        guard subscriptions[channel] == nil else {
            throw SwitchboardClientError.refused(ProtocolError(.conflict, "already subscribed to \"\(channel)\" on this client"))
        }
        let state = SubscriptionState(channel: channel, presence: presence, capacity: configuration.subscriptionBuffer)
        subscriptions[channel] = Subscribed(state: state, last: since, connection: nil)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            subscriptions[channel]?.ready = continuation
            if connection != nil { sendSubscribe(channel) }
        }
        return state
    }

    /// The app is done with a subscription (its loop ended or was cancelled).
    func unsubscribe(_ channel: String, handle: UUID) {
        guard let subscription = subscriptions[channel], subscription.state.handleID == handle else { return }
        subscriptions.removeValue(forKey: channel)
        subscription.state.buffer.finish()
        if subscription.connection != nil { _ = send(.unsubscribe, ["channel": .string(channel)], pending: .ignored) }
    }

    /// The token for a REST call.
    func token() async throws -> String? {
        if let currentToken { return currentToken }
        return try await tokenProvider?()
    }
}
