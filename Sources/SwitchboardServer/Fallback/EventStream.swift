import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import SwitchboardCore

/// One Server-Sent Events stream (SPEC section 4), the output of its client session: the
/// same messages and offsets as the WebSocket, each event's `id` carrying the position of
/// every channel of the stream, so that `Last-Event-ID` resumes all of them without a gap.
final class EventStream: SessionOutput {
    let channels: [String]
    let queue: OutboundQueue
    private let positions = Mutex<[String: Position]>([:])

    /// `resume`: the positions the client brought (`Last-Event-ID`), which every id carries
    /// until each channel moves on.
    init(channels: [String], resume: [String: Position], queueBytes: Int) {
        self.channels = channels
        self.queue = OutboundQueue(limitBytes: queueBytes)
        positions.withLock { p in
            for channel in channels { p[channel] = resume[channel] }
        }
    }

    func close(_ reason: CloseReason) {
        queue.close(code: reason.code, reason: reason.reason)
    }

    func waitForRoom() async {
        await queue.waitForRoom(atMost: queue.limitBytes / 2)
    }

    /// Joins and leaves are not sent over SSE.
    func presence(_ change: PresenceChange) {}

    /// A stream has no `refresh`; it ends when its token would, and the client reconnects.
    func expires(atMillis: Int64?) {}

    func deliver(_ message: ChannelMessage, frames: inout MessageFrames) {
        let id = advance(message.channel, to: message.position)
        var event = ByteBuffer(string: "id: \(id)\nevent: message\ndata: ")
        event.writeImmutableBuffer(frames.webSocket().json)
        event.writeString("\n\n")
        queue.push(event)
    }

    /// Where the client stands in `channel` as its subscription starts.
    func subscribed(_ channel: String, at position: Position) {
        _ = advance(channel, to: position)
    }

    /// The `subscribed` event for one channel: its position and whether `Last-Event-ID`
    /// recovered it. Its id is what the client holds: the missed messages follow it.
    func subscribedEvent(channel: String, position: Position, recovered: Bool) -> ByteBuffer {
        let id = positions.withLock { Self.eventID($0, order: channels) }
        let data: JSONValue = [
            "channel": .string(channel), "epoch": .string(position.epoch),
            "offset": .int(position.offset), "recovered": .bool(recovered),
        ]
        return ByteBuffer(string: "id: \(id)\nevent: subscribed\ndata: \(data.serialized)\n\n")
    }

    /// Records `channel` at `position` and returns the event id for all channels.
    private func advance(_ channel: String, to position: Position) -> String {
        positions.withLock { p in
            p[channel] = position
            return Self.eventID(p, order: channels)
        }
    }

    /// `CHANNEL@EPOCH:OFFSET;…` in the stream's channel order.
    static func eventID(_ positions: [String: Position], order: [String]) -> String {
        PositionList.format(positions, order: order)
    }
}

/// `GET /v1/sse?channels=a,b`.
struct EventStreamRoute {
    typealias Context = SwitchboardRequestContext
    let environment: SessionEnvironment
    let gate: HandshakeGate
    let configuration: ServerConfiguration
    let metrics: ServerMetrics
    let logger: Logger

    func register(on router: Router<Context>) {
        router.get("v1/sse", use: open)
    }

    func open(_ request: Request, context: Context) async throws -> Response {
        let names = request.uri.queryParameters["channels"].map { $0.split(separator: ",").map(String.init) } ?? []
        guard !names.isEmpty else { throw ProtocolError.badRequest("channels is required: /v1/sse?channels=a,b") }
        guard names.count <= configuration.limits.subscriptions else {
            throw ProtocolError(.tooLarge, "at most \(configuration.limits.subscriptions) channels a stream")
        }
        var channels: [String] = []
        for name in names where !channels.contains(name) {
            channels.append(try QueryValue.channel(name))
        }
        let ip = context.clientIP
        let handshake = HandshakeRequest(
            path: request.uri.path, origin: request.headers[.origin], host: request.head.authority,
            credential: Credentials.from(request)
        )
        let identity = try await gate.admit(handshake, ip: ip)
        // `Last-Event-ID` as EventSource sends it on a reconnect, or `last_event_id=` from a
        // client opening a new stream where it left off (EventSource cannot set the header).
        let lastEventID = request.headers[HTTPField.Name("Last-Event-ID")!] ?? request.uri.queryParameters["last_event_id"].map(String.init)
        let resume = lastEventID.map { PositionList.parse($0) } ?? [:]
        let stream = EventStream(channels: channels, resume: resume, queueBytes: configuration.limits.queueBytes)
        let session = environment.makeSession(identity: identity, output: stream)
        // Refused before the stream starts, with the status of the first channel refused.
        for channel in channels { try session.access.check(.subscribe(presence: false), channel: channel) }
        stream.queue.push(ByteBuffer(string: "retry: 1000\n\n"))
        let streamChannels = channels
        let limiter = environment.limiter
        let metrics = self.metrics
        let logger = self.logger
        let keepAlive = Duration.seconds(max(1, configuration.heartbeatSeconds))
        limiter.connectionOpened(ip: ip)
        metrics.connectionOpened(transport: "sse")
        logger.info("connected", metadata: ["transport": "sse", "user": "\(identity.user ?? "-")", "channels": "\(channels.count)"])
        let headers: HTTPFields = [
            .contentType: "text/event-stream", .cacheControl: "no-cache",
            HTTPField.Name("X-Accel-Buffering")!: "no",
        ]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer {
                session.ended()
                limiter.connectionClosed(ip: ip)
                metrics.connectionClosed(transport: "sse")
            }
            let reason = await withGracefulShutdownHandler {
                await withTaskGroup(of: Void.self) { group in
                    // Subscribing runs beside the writer: a long catch-up is paced by it.
                    group.addTask {
                        do {
                            for channel in streamChannels {
                                try await session.subscribe(channel, since: resume[channel]) { position, recovered in
                                    stream.queue.push(stream.subscribedEvent(channel: channel, position: position, recovered: recovered))
                                }
                            }
                        } catch is CancellationError {
                            // The client went away while its channels were being subscribed.
                        } catch {
                            logger.error("SSE subscribe failed", metadata: ["error": "\(error)"])
                            stream.close(.internalError("the server could not subscribe this stream"))
                        }
                    }
                    group.addTask {
                        // Comment lines keep proxies and clients from timing the stream out.
                        while (try? await Task.sleep(for: keepAlive)) != nil {
                            stream.queue.push(ByteBuffer(string: ": keep-alive\n\n"))
                        }
                    }
                    defer { group.cancelAll() }
                    return await Self.drain(stream.queue, into: &writer)
                }
            } onGracefulShutdown: {
                stream.close(.restart)
            }
            logger.info("disconnected", metadata: ["transport": "sse", "reason": "\(reason)"])
            try? await writer.finish(nil)
        })
    }

    /// Writes queued events until the queue closes or the client goes; returns why it ended.
    private static func drain(_ queue: OutboundQueue, into writer: inout any ResponseBodyWriter) async -> String {
        while true {
            switch await queue.next() {
            case .frames(let frames):
                for frame in frames {
                    do {
                        try await writer.write(frame)
                    } catch {
                        queue.finish()
                        return "client went away"
                    }
                    queue.didWrite(bytes: frame.readableBytes)
                }
            case .close(let code, let reason):
                let data: JSONValue = ["code": .int(Int64(code)), "reason": .string(reason)]
                try? await writer.write(ByteBuffer(string: "event: close\ndata: \(data.serialized)\n\n"))
                queue.finish()
                return "\(code) \(reason)"
            case .finished:
                return "finished"
            }
        }
    }
}
