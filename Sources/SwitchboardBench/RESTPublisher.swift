import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix

/// What publishing came to.
struct PublishReport: Sendable {
    /// Requests sent, answered 201, and answered 201 with a send time in the measured window.
    var issued = 0
    var published = 0
    var publishedInWindow = 0
    var errors = 0
    var firstError: String?
    /// Request round trips, microseconds.
    var roundTrips = makeLatencyHistogram()
}

/// Publishes `rate` messages a second over a few keep-alive HTTP/1.1 connections, one request
/// in flight on each, paced from a monotonic clock: behind schedule, it catches up as
/// connections free. Each message's data is `{"p":"xx…","s":SEQ,"t":NANOS}` padded to `size`
/// bytes, with `t` the wall clock when the request is written. Confined to one event loop.
final class RESTPublisher {
    struct Plan: Sendable {
        var rate: Double
        var size: Int
        var connections: Int
        /// Send times (wall-clock ns) that are measured.
        var window: Range<Int64>
        /// How long to publish for.
        var seconds: Double
    }

    static func run(options: BenchOptions, plan: Plan, on loop: any EventLoop) async throws -> PublishReport {
        try await loop.flatSubmit { RESTPublisher(options: options, plan: plan, loop: loop).start() }.get()
    }

    private static let errorsBeforeGivingUp = 20

    private let options: BenchOptions
    private let plan: Plan
    private let loop: any EventLoop
    private let done: EventLoopPromise<PublishReport>
    private var startTime = NIODeadline.now()
    private var stopTime = NIODeadline.now()
    private var issuing = false
    private var idle: [PublishHandler] = []
    private var inFlight = 0
    private var report = PublishReport()

    private init(options: BenchOptions, plan: Plan, loop: any EventLoop) {
        self.options = options
        self.plan = plan
        self.loop = loop
        self.done = loop.makePromise()
    }

    /// The request head for publishing to `target` (the body's length is added per request).
    private func head(for target: BenchTarget) -> HTTPRequestHead {
        HTTPRequestHead(
            version: .http1_1,
            method: .POST,
            uri: target.messagesPath(channel: options.channel),
            headers: HTTPHeaders(
                [("Host", target.hostHeader), ("User-Agent", "switchboard-bench"), ("Content-Type", "application/json")]
                    + options.authHeaders
            )
        )
    }

    /// Connects every connection first, so that connecting does not eat into the schedule.
    private func start() -> EventLoopFuture<PublishReport> {
        let connecting = (0..<max(1, plan.connections)).map { _ in connect() }
        EventLoopFuture.whenAllComplete(connecting, on: loop).assumeIsolated().whenSuccess { results in
            guard self.idle.count > 0 else {
                let reason = results.lazy.compactMap { result -> String? in
                    if case .failure(let error) = result { failureReason(error) } else { nil }
                }.first ?? "no connection"
                self.done.fail(BenchError.nothingConnected("publisher: \(reason)"))
                return
            }
            self.startTime = .now()
            self.stopTime = self.startTime + .nanoseconds(Int64(self.plan.seconds * 1e9))
            self.issuing = true
            self.tick()
        }
        return done.futureResult
    }

    private func connect() -> EventLoopFuture<Void> {
        let target = options.nextPublishTarget()
        let head = head(for: target)
        return ClientBootstrap(group: loop)
            .connectTimeout(.seconds(10))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHTTPClientHandlers() }
            }
            .connect(host: target.host, port: target.port)
            .assumeIsolated()
            .flatMapThrowing { channel in
                let handler = PublishHandler(
                    head: head,
                    onResponse: { handler, outcome in self.answered(handler, outcome) },
                    onClose: { handler in self.closed(handler) }
                )
                try channel.pipeline.syncOperations.addHandler(handler)
                self.idle.append(handler)
            }
            .nonisolated()
    }

    /// Sends what is due, then sleeps until the next message is due (at least 1 ms: a batch)
    /// or publishing ends.
    private func tick() {
        guard issuing else { return }
        let now = NIODeadline.now()
        guard now < stopTime else {
            issuing = false
            finishIfDone()
            return
        }
        dispatch(now: now)
        let next = startTime + .nanoseconds(Int64(Double(report.issued) * 1e9 / plan.rate))
        loop.assumeIsolated().scheduleTask(deadline: min(max(next, now + .milliseconds(1)), stopTime)) { self.tick() }
    }

    private func dispatch(now: NIODeadline = .now()) {
        guard issuing else { return }
        let due = Int(Double((now - startTime).nanoseconds) / 1e9 * plan.rate) + 1
        // The longest-idle connection first, so that publishes spread over every connection
        // (and so over every node of a cluster).
        while report.issued < due, !idle.isEmpty {
            let connection = idle.removeFirst()
            report.issued += 1
            inFlight += 1
            let sentAt = wallClockNanos()
            let body = body(seq: report.issued, sentAt: sentAt, allocator: connection.allocator)
            var head = connection.head
            head.headers.add(name: "Content-Length", value: String(body.readableBytes))
            connection.send(head: head, body: body, sentAt: sentAt)
        }
    }

    /// `{"data":{"p":"xx…","s":SEQ,"t":NANOS}}`: the keys in the order the server sorts them to.
    private func body(seq: Int, sentAt: Int64, allocator: ByteBufferAllocator) -> ByteBuffer {
        let opening = #"{"data":{"p":""#
        let closing = #"","s":\#(seq),"t":\#(sentAt)}}"#
        // The data object is everything but `{"data":` and the last `}`.
        let unpadded = opening.utf8.count - 8 + closing.utf8.count - 1
        let padding = max(0, plan.size - unpadded)
        var buffer = allocator.buffer(capacity: opening.utf8.count + padding + closing.utf8.count)
        buffer.writeString(opening)
        buffer.writeRepeatingByte(UInt8(ascii: "x"), count: padding)
        buffer.writeString(closing)
        return buffer
    }

    private func answered(_ connection: PublishHandler, _ outcome: PublishHandler.Outcome) {
        inFlight -= 1
        if outcome.status == 201 {
            report.published += 1
            if plan.window.contains(outcome.sentAt) { report.publishedInWindow += 1 }
            report.roundTrips.record(UInt64(max(0, outcome.roundTrip.nanoseconds / 1000)))
        } else {
            report.errors += 1
            if report.firstError == nil { report.firstError = outcome.failure }
            // Refused from the start (no grant, a reserved channel): no point going on.
            if report.published == 0, report.errors >= Self.errorsBeforeGivingUp, issuing {
                issuing = false
                done.fail(BenchError.publishRefused(report.firstError ?? "unknown error"))
            }
        }
        if outcome.status != nil { idle.append(connection) }
        dispatch()
        finishIfDone()
    }

    /// A connection the server closed: replaced while publishing goes on.
    private func closed(_ connection: PublishHandler) {
        idle.removeAll { $0 === connection }
        reconnect()
    }

    private func reconnect() {
        guard issuing else { return }
        loop.assumeIsolated().scheduleTask(in: .milliseconds(100)) {
            self.connect().assumeIsolated().whenComplete { result in
                switch result {
                case .failure: self.reconnect()
                case .success: self.issuing ? self.dispatch() : self.finishIfDone()
                }
            }
        }
    }

    private func finishIfDone() {
        guard !issuing, inFlight == 0 else { return }
        for connection in idle { connection.close() }
        idle.removeAll()
        done.succeed(report)
    }
}

/// One keep-alive HTTP/1.1 connection with at most one request in flight.
private final class PublishHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    struct Outcome {
        /// nil: the connection closed before the answer.
        var status: Int?
        var sentAt: Int64
        var roundTrip: TimeAmount
        /// For anything but 201: the status and the problem's detail.
        var failure: String?
    }

    /// The head of this connection's requests (its target's).
    let head: HTTPRequestHead
    private let onResponse: (PublishHandler, Outcome) -> Void
    private let onClose: (PublishHandler) -> Void
    private var context: ChannelHandlerContext?
    private var request: (sentAt: Int64, started: NIODeadline)?
    private var status: HTTPResponseStatus?
    private var errorBody = ByteBuffer()

    init(head: HTTPRequestHead, onResponse: @escaping (PublishHandler, Outcome) -> Void, onClose: @escaping (PublishHandler) -> Void) {
        self.head = head
        self.onResponse = onResponse
        self.onClose = onClose
    }

    var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func send(head: HTTPRequestHead, body: ByteBuffer, sentAt: Int64) {
        guard let context else { return }
        request = (sentAt, .now())
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func close() {
        context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
            errorBody.clear()
        case .body(var part):
            if status != .created, errorBody.readableBytes < 1024 { errorBody.writeBuffer(&part) }
        case .end:
            guard let request, let status else { return }
            self.request = nil
            self.status = nil
            let failure = status == .created ? nil : "HTTP \(status.code): \(problemDetail(errorBody) ?? status.reasonPhrase)"
            onResponse(self, Outcome(status: Int(status.code), sentAt: request.sentAt, roundTrip: .now() - request.started, failure: failure))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let request {
            self.request = nil
            onResponse(self, Outcome(status: nil, sentAt: request.sentAt, roundTrip: .zero, failure: "connection closed"))
        }
        self.context = nil
        onClose(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// The `detail` of a problem document, else the body as text.
    private func problemDetail(_ body: ByteBuffer) -> String? {
        guard body.readableBytes > 0 else { return nil }
        let data = Data(body.readableBytesView)
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let detail = object["detail"] as? String {
            return detail
        }
        return String(decoding: data, as: UTF8.self)
    }
}
