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
/// A new connection starts with `FirstRequestHandler` alone, which answers a WebSocket
/// handshake itself (a refused one with the reason, as a problem document: 401, 403 or 429,
/// SPEC.md section 5) and gives any other request the HTTP pipeline and the router.
/// Adapted from hummingbird-websocket's `HTTP1WebSocketUpgradeChannel` (Apache 2.0).
struct UpgradeChannel: ServerChildChannel, HTTPChannelHandler {
    enum Negotiated: Sendable {
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// Upgraded and handed to its session, or refused and answered: nothing left to do here.
        case handled
    }

    struct Value: ServerChildChannelValue {
        let negotiated: EventLoopFuture<Negotiated>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let idleTimeout: Duration
    /// How long the head of the first request may take (slowloris).
    let firstRequestTimeout: TimeAmount
    /// Offer permessage-deflate to clients that ask for it.
    let compression: Bool
    /// Runs the handshake's checks.
    let admit: @Sendable (HandshakeRequest, SocketAddress?) -> AdmissionCheck
    /// Sets up an accepted connection on its upgraded channel (on the channel's event loop).
    let accept: @Sendable (any Channel, Admission) throws -> Void

    init(
        responder: @escaping HTTPChannelHandler.Responder,
        idleTimeout: Duration,
        firstRequestTimeout: TimeAmount,
        compression: Bool,
        admit: @escaping @Sendable (HandshakeRequest, SocketAddress?) -> AdmissionCheck,
        accept: @escaping @Sendable (any Channel, Admission) throws -> Void
    ) {
        self.responder = Self.redirectingLateUpgrades(responder)
        self.idleTimeout = idleTimeout
        self.firstRequestTimeout = firstRequestTimeout
        self.compression = compression
        self.admit = admit
        self.accept = accept
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // A channel keeps the buffers it reads into for reuse: start them small, so that
            // an idle connection does not hold kilobytes of them (they grow with the traffic).
            try channel.syncOptions?.setOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536))
            let idleTimeout = self.idleTimeout
            let negotiated = channel.eventLoop.makePromise(of: Negotiated.self)
            let first = FirstRequestHandler(
                timeout: firstRequestTimeout, compression: compression, admit: admit, accept: accept,
                installHTTP: { channel in
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: false, withServerUpgrade: nil, withErrorHandling: false, withOutboundHeaderValidation: false
                    )
                    try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                    try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: idleTimeout, logger: logger))
                    return .http(try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(isOutboundHalfClosureEnabled: true)
                    ))
                },
                negotiated: negotiated
            )
            try channel.pipeline.syncOperations.addHandler(first)
            return Value(negotiated: negotiated.futureResult, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            // Until its first request, a connection is only its channel: a cancelled server
            // closes it rather than wait for the first-request timeout.
            let negotiated = try await withTaskCancellationHandler {
                try await value.negotiated.get()
            } onCancel: {
                value.channel.close(promise: nil)
            }
            switch negotiated {
            case .http(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .handled:
                // A WebSocket lives on in its channel handler, with no task of its own.
                break
            }
        } catch {
            logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
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

    struct CloseConnection: Error {}
}
