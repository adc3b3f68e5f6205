import Hummingbird
import ServiceLifecycle
import Synchronization
import SwitchboardCore

/// Collects the messages of one long-poll and wakes it when the first arrives.
final class PollWaiter: Subscriber {
    private struct State {
        var messages: [ChannelMessage] = []
        var waiter: CheckedContinuation<Void, Never>?
        var woken = false
    }

    private let state = Mutex(State())

    func deliver(_ message: ChannelMessage, frames: inout MessageFrames) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.messages.append(message)
            return take(&s)
        }
        waiter?.resume()
    }

    /// The poll answers with what it has; the next one, with `since`, reads the rest.
    func missed(channel: String) {
        wake()
    }

    var messages: [ChannelMessage] { state.withLock { $0.messages } }

    /// Ends the wait now (timeout, shutdown).
    func wake() {
        state.withLock { take(&$0) }?.resume()
    }

    private func take(_ s: inout State) -> CheckedContinuation<Void, Never>? {
        s.woken = true
        let w = s.waiter
        s.waiter = nil
        return w
    }

    /// Waits until a message arrives, `wake` is called, or the task is cancelled.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { s -> Bool in
                    if s.woken || !s.messages.isEmpty { return true }
                    s.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            self.wake()
        }
    }
}

/// `GET /v1/poll?channel=C&since=EPOCH:OFFSET&timeout=25` (SPEC section 4).
struct LongPollRoute {
    typealias Context = SwitchboardRequestContext
    let node: Node

    func register(on router: Router<Context>) {
        router.get("v1/poll", use: poll)
    }

    func poll(_ request: Request, context: Context) async throws -> Response {
        var channel: String?
        var since: Position?
        var timeout = 25
        for (name, value) in request.decodedQuery {
            switch name {
            case "channel": channel = try QueryValue.channel(value)
            case "since": since = try QueryValue.position(value)
            case "timeout": timeout = try QueryValue.int(value, name: "timeout", in: 0...60)
            default:
                continue
            }
        }
        guard let channel else { throw ProtocolError.badRequest("channel is required: /v1/poll?channel=C&since=EPOCH:OFFSET") }
        try node.access(context.identity).check(.history, channel: channel)

        let waiter = PollWaiter()
        let subscription = try await node.subscribe(waiter, channel: channel, since: since)
        defer { node.unsubscribe(waiter, channel: channel) }
        if since == nil || subscription.recovered {
            let timer = Task {
                try? await Task.sleep(for: .seconds(timeout))
                waiter.wake()
            }
            await withGracefulShutdownHandler {
                await waiter.wait()
            } onGracefulShutdown: {
                waiter.wake()
            }
            timer.cancel()
        }
        let messages = waiter.messages
        let position = messages.last?.position ?? subscription.position
        var extra: [String: JSONValue] = [:]
        if since != nil { extra["recovered"] = .bool(subscription.recovered) }
        return .json(ServerFrames.messagesObject(messages, position: position, extra: extra))
    }
}
