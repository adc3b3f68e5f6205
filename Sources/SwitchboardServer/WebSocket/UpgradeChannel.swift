import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import SwitchboardCore

/// A WebSocket handshake as its checks see it, read from the raw HTTP/1 request head.
struct HandshakeRequest: Sendable {
    var path: String
    /// The whole request target, query included.
    var target = ""
    var authorization: String?
    var apiKey: String?
    var origin: String?
    var host: String?
    var credential: String?
    var forwardedFor: [String] = []
    var forwarded: [String] = []
}

/// What an accepted handshake hands to the connection.
struct Admission: Sendable {
    enum Kind: Sendable {
        /// `/v1/ws`, with who the client is.
        case switchboard(Identity)
        /// `/socket.io/`: Engine.IO over a WebSocket; credentials come with CONNECT.
        case socketIO(SocketIOHandshake)
    }

    var kind: Kind
    var ip: String
    /// permessage-deflate was negotiated (set by the upgrader).
    var deflate = false
}

/// Why a handshake was refused, answered in the form its protocol's clients read.
enum HandshakeRefusal: Error, Sendable {
    /// A problem document (`/v1/ws`, SPEC section 5).
    case problem(ProtocolError, path: String)
    /// Engine.IO's `{"code","message"}`.
    case engineIO(EngineIOError)

    var message: String {
        switch self {
        case .problem(let error, _): error.message
        case .engineIO(let error): error.message
        }
    }
}

/// HTTP/1.1 plus the WebSocket upgrade on one port.
///
/// Unlike hummingbird-websocket's channel, which answers every refused upgrade with a bare
/// 400, a refused handshake here is answered with the reason as a problem document: 401,
/// 403 or 429 (SPEC section 5). (NIO does not pass a declined upgrade request on to the
/// HTTP pipeline, so the router cannot answer it.)
/// Adapted from hummingbird-websocket's `HTTP1WebSocketUpgradeChannel` (Apache 2.0).
struct UpgradeChannel: ServerChildChannel, HTTPChannelHandler {
    enum Negotiated: Sendable {
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case refusedUpgrade(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, HandshakeRefusal)
        /// Upgraded and handed to its session; nothing left to do here.
        case webSocket
    }

    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<Negotiated>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let idleTimeout: Duration
    /// Offer permessage-deflate to clients that ask for it.
    let compression: Bool
    /// Runs the handshake's checks.
    let admit: @Sendable (HandshakeRequest, SocketAddress?) -> AdmissionCheck
    /// Sets up an accepted connection on its upgraded channel (on the channel's event loop).
    let accept: @Sendable (any Channel, Admission) throws -> Void

    init(
        responder: @escaping HTTPChannelHandler.Responder,
        idleTimeout: Duration,
        compression: Bool,
        admit: @escaping @Sendable (HandshakeRequest, SocketAddress?) -> AdmissionCheck,
        accept: @escaping @Sendable (any Channel, Admission) throws -> Void
    ) {
        self.responder = Self.redirectingLateUpgrades(responder)
        self.idleTimeout = idleTimeout
        self.compression = compression
        self.admit = admit
        self.accept = accept
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // A channel keeps the buffers it reads into for reuse: start them small, so that
            // an idle connection does not hold kilobytes of them (they grow with the traffic).
            try channel.syncOptions?.setOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536))
            let verdict = NIOLoopBoundBox<Result<Admission, HandshakeRefusal>?>(nil, eventLoop: channel.eventLoop)
            let upgrader = WebSocketUpgrader(compression: compression, verdict: verdict, admit: admit, accept: accept)
            let idleTimeout = self.idleTimeout
            let upgrades = NIOTypedHTTPServerUpgradeConfiguration<Negotiated>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: idleTimeout, logger: logger))
                        let http = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        if case .failure(let refusal) = verdict.value { return .refusedUpgrade(http, refusal) }
                        return .http(http)
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<Negotiated>(upgradeConfiguration: upgrades)
            configuration.enablePipelining = false
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            return Value(negotiated: negotiated, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.negotiated.get() {
            case .http(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .refusedUpgrade(let http, let refusal):
                await Self.writeRefusal(refusal, to: http, logger: logger)
            case .webSocket:
                // The connection lives on in its channel handler, with no task of its own.
                break
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    static func handshakeRequest(_ head: HTTPRequestHead) -> HandshakeRequest {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let authorization = head.headers["Authorization"].first
        let apiKey = head.headers["X-API-Key"].first
        return HandshakeRequest(
            path: path, target: head.uri, authorization: authorization, apiKey: apiKey,
            origin: head.headers["Origin"].first, host: head.headers["Host"].first,
            credential: Credentials.credential(authorization: authorization, apiKey: apiKey, target: head.uri),
            forwardedFor: head.headers["X-Forwarded-For"], forwarded: head.headers["Forwarded"]
        )
    }

    /// A later request on a kept-alive connection cannot upgrade (the upgrade handler is gone):
    /// send it to a new connection, as hummingbird-websocket does.
    static func redirectingLateUpgrades(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        { request, writer, channel in
            guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                return try await responder(request, writer, channel)
            }
            var path = request.uri.path
            if let query = request.uri.query { path += "?\(query)" }
            try await writer.writeResponse(HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: path]))
            throw CloseConnection()
        }
    }

    /// Answers a refused handshake (a problem document, or Engine.IO's error) and closes the connection.
    static func writeRefusal(_ refusal: HandshakeRefusal, to http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, logger: Logger) async {
        let body: ByteBuffer
        let status: HTTPResponse.Status
        let contentType: String
        switch refusal {
        case .problem(let error, let path):
            body = ByteBuffer(string: Problem.document(error, path: path).serialized)
            status = Problem.status(error)
            contentType = "application/problem+json"
        case .engineIO(let error):
            body = ByteBuffer(string: error.body)
            status = HTTPResponse.Status(code: error.httpStatus)
            contentType = "application/json"
        }
        let headers: HTTPFields = [
            .contentType: contentType,
            .contentLength: String(body.readableBytes),
            .connection: "close",
        ]
        do {
            try await http.executeThenClose { _, outbound in
                try await outbound.write(contentsOf: [
                    .head(HTTPResponse(status: status, headerFields: headers)),
                    .body(body),
                    .end(nil),
                ])
            }
        } catch {
            logger.trace("could not answer a refused handshake", metadata: ["error": "\(error)"])
        }
    }

    struct CloseConnection: Error {}
}
