import NIOCore

/// Something that receives a channel's frames: a WebSocket connection, an SSE stream, a poll.
///
/// `send` is called by the hub in commit order while it holds its lock, so it must only
/// enqueue: it never blocks and never calls back into the hub.
public protocol Subscriber: AnyObject, Sendable {
    func send(_ frame: ByteBuffer)
}
