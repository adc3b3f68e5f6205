import NIOCore

/// Pings the WebSockets of one event loop every heartbeat with one timer for all of them:
/// a timer per connection would cost memory on every idle connection. Each connection is
/// pinged within a heartbeat of joining, and closed (1001) when the next tick finds its
/// ping unanswered, so a dead peer goes at most two heartbeats after its last pong.
final class LoopHeartbeat: Sendable {
    private let eventLoop: any EventLoop
    private let interval: TimeAmount
    private let members: NIOLoopBoundBox<[ObjectIdentifier: WebSocketHandler]>
    private let timer: NIOLoopBoundBox<RepeatedTask?>

    init(eventLoop: any EventLoop, interval: TimeAmount) {
        self.eventLoop = eventLoop
        self.interval = interval
        self.members = NIOLoopBoundBox([:], eventLoop: eventLoop)
        self.timer = NIOLoopBoundBox(nil, eventLoop: eventLoop)
    }

    /// On the loop: starts pinging `handler`.
    func join(_ handler: WebSocketHandler) {
        members.value[ObjectIdentifier(handler)] = handler
        guard timer.value == nil else { return }
        timer.value = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            // A copy: a tick may close connections, which leave meanwhile.
            for handler in self.members.value.values { handler.heartbeatDue() }
        }
    }

    /// On the loop: stops pinging `handler`; the timer stops with the loop's last connection.
    func leave(_ handler: WebSocketHandler) {
        members.value.removeValue(forKey: ObjectIdentifier(handler))
        guard members.value.isEmpty else { return }
        timer.value?.cancel()
        timer.value = nil
    }
}
