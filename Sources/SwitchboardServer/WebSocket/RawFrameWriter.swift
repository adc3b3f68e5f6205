import NIOCore
import NIOWebSocket

/// The point in the pipeline where whole frames are written: just before NIO's WebSocket
/// frame encoder (which NIO's upgrader installs and which cannot be removed), after TLS.
/// Frames built once with their header, such as a message's push frame shared by every
/// subscriber, go out through here as they are, with no per-connection encoding.
final class RawFrameWriter: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private(set) var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Installs the writer in front of the frame encoder.
    static func install(in channel: any Channel) throws -> RawFrameWriter {
        let writer = RawFrameWriter()
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(writer, position: .before(try pipeline.handler(type: WebSocketFrameEncoder.self)))
        return writer
    }
}
