import NIOCore
import Synchronization

/// A connection's outbound frames, bounded in bytes. Producers (the hub, the command loop)
/// never wait: a push that would pass the limit marks the queue overflowed instead, and the
/// writer then closes the connection (4100) so the client resumes from its last offset.
/// Pushes after a close was asked for are dropped.
public final class OutboundQueue: Sendable {
    public enum Next: Sendable {
        case frames([ByteBuffer])
        /// Close the connection with this code after the frames already taken.
        case close(code: UInt16, reason: String)
        case finished
    }

    private struct State {
        var frames: [ByteBuffer] = []
        var queuedBytes = 0
        var closing: (code: UInt16, reason: String)?
        var finished = false
        var waiter: CheckedContinuation<Void, Never>?
        /// A producer waiting for the queue to drain to a level (catch-up pacing).
        var roomWaiter: (bytes: Int, continuation: CheckedContinuation<Void, Never>)?
    }

    private let state = Mutex(State())
    public let limitBytes: Int

    public init(limitBytes: Int) {
        self.limitBytes = limitBytes
    }

    /// Adds a frame; false if the queue is over its limit (or closed) and the frame was dropped.
    @discardableResult
    public func push(_ frame: ByteBuffer) -> Bool {
        let (accepted, waiter) = state.withLock { s -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !s.finished, s.closing == nil else { return (false, nil) }
            var accepted = true
            if s.queuedBytes + frame.readableBytes > limitBytes && s.queuedBytes > 0 {
                s.closing = (4100, "slow consumer: more than \(limitBytes) bytes waiting; reconnect and resume")
                s.frames.removeAll()
                s.roomWaiter?.continuation.resume()
                s.roomWaiter = nil
                accepted = false
            } else {
                s.frames.append(frame)
                s.queuedBytes += frame.readableBytes
            }
            let w = s.waiter
            s.waiter = nil
            return (accepted, w)
        }
        waiter?.resume()
        return accepted
    }

    /// Marks `bytes` as written to the socket, making room for more.
    public func didWrite(bytes: Int) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.queuedBytes -= bytes
            guard let room = s.roomWaiter, s.queuedBytes <= room.bytes else { return nil }
            s.roomWaiter = nil
            return room.continuation
        }
        waiter?.resume()
    }

    /// Waits until at most `bytes` are queued (or the queue is closing), so that a producer
    /// with a lot to send, such as a catch-up from history, does not overflow the queue.
    public func waitForRoom(atMost bytes: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.queuedBytes <= bytes || s.finished || s.closing != nil { return true }
                s.roomWaiter?.continuation.resume()
                s.roomWaiter = (bytes, continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Asks the writer to close the connection after what is queued now; later pushes are dropped.
    public func close(code: UInt16, reason: String) {
        let (waiter, room) = state.withLock { s -> (CheckedContinuation<Void, Never>?, CheckedContinuation<Void, Never>?) in
            if s.closing == nil { s.closing = (code, reason) }
            defer { s.waiter = nil; s.roomWaiter = nil }
            return (s.waiter, s.roomWaiter?.continuation)
        }
        waiter?.resume()
        room?.resume()
    }

    /// Stops the queue; the writer gets `.finished` once it has taken what was queued.
    public func finish() {
        let (waiter, room) = state.withLock { s -> (CheckedContinuation<Void, Never>?, CheckedContinuation<Void, Never>?) in
            s.finished = true
            defer { s.waiter = nil; s.roomWaiter = nil }
            return (s.waiter, s.roomWaiter?.continuation)
        }
        waiter?.resume()
        room?.resume()
    }

    /// Waits for frames; returns everything queued so far, in order. Cancelling the waiting
    /// task finishes the queue.
    public func next() async -> Next {
        while true {
            let ready: Next? = state.withLock { s in
                if !s.frames.isEmpty {
                    let frames = s.frames
                    s.frames = []
                    return .frames(frames)
                }
                if let closing = s.closing { return .close(code: closing.code, reason: closing.reason) }
                if s.finished { return .finished }
                return nil
            }
            if let ready { return ready }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { s -> Bool in
                        if s.closing != nil || s.finished || !s.frames.isEmpty { return true }
                        s.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                self.finish()
            }
        }
    }
}
