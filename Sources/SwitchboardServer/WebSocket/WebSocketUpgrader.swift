import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import SwitchboardCore

/// The WebSocket opening handshake (RFC 6455 section 4.2), answered by us rather than by
/// NIO's upgrader, which installs a frame encoder and decoder that `WebSocketHandler` does
/// not need: after the upgrade the connection's pipeline holds that one handler.
///
/// It checks the key and version, runs the handshake's checks (decided without a task
/// unless a token must be verified), negotiates permessage-deflate when `compression` is
/// on, and hands the accepted channel to `accept` (on its event loop). The verdict is kept
/// in `verdict`, where a refusal is found and answered once NIO gives up the upgrade.
struct WebSocketUpgrader: NIOTypedHTTPServerProtocolUpgrader {
    typealias UpgradeResult = UpgradeChannel.Negotiated

    let supportedProtocol = "websocket"
    /// Checked here, not by NIO (which would also require them in the `Connection` header).
    let requiredUpgradeHeaders: [String] = []

    let compression: Bool
    let verdict: NIOLoopBoundBox<Result<Admission, HandshakeRefusal>?>
    let admit: @Sendable (HandshakeRequest, SocketAddress?) -> AdmissionCheck
    let accept: @Sendable (any Channel, Admission) throws -> Void

    struct Refused: Error {}

    func buildUpgradeResponse(channel: Channel, upgradeRequest: HTTPRequestHead, initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        let headers = upgradeRequest.headers
        let request = UpgradeChannel.handshakeRequest(upgradeRequest)
        guard headers["Sec-WebSocket-Key"].count == 1, let key = headers.first(name: "Sec-WebSocket-Key"),
              headers.first(name: "Sec-WebSocket-Version") == "13"
        else {
            verdict.value = .failure(.problem(
                .badRequest("a WebSocket handshake needs one Sec-WebSocket-Key and Sec-WebSocket-Version: 13"), path: request.path
            ))
            return channel.eventLoop.makeFailedFuture(Refused())
        }
        let deflate = compression ? PerMessageDeflateOffer.negotiate(headers["Sec-WebSocket-Extensions"]) : nil
        let respond = { [verdict] (result: Result<Admission, HandshakeRefusal>) throws -> HTTPHeaders in
            guard case .success(var admission) = result else {
                verdict.value = result
                throw Refused()
            }
            admission.deflate = deflate != nil
            verdict.value = .success(admission)
            var response = initialResponseHeaders
            response.replaceOrAdd(name: "Upgrade", value: "websocket")
            response.replaceOrAdd(name: "Connection", value: "upgrade")
            response.add(name: "Sec-WebSocket-Accept", value: Self.accept(key: key))
            if let deflate { response.add(name: "Sec-WebSocket-Extensions", value: deflate) }
            return response
        }
        switch admit(request, channel.remoteAddress) {
        case .decided(let result):
            return channel.eventLoop.makeCompletedFuture { try respond(result) }
        case .pending(let later):
            let promise = channel.eventLoop.makePromise(of: Result<Admission, HandshakeRefusal>.self)
            promise.completeWithTask { await later() }
            return promise.futureResult.hop(to: channel.eventLoop).flatMapThrowing(respond)
        }
    }

    func upgrade(channel: Channel, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<UpgradeResult> {
        channel.eventLoop.makeCompletedFuture {
            guard case .success(let admission) = verdict.value else { throw Refused() }
            try accept(channel, admission)
            return .webSocket
        }
    }

    /// `Sec-WebSocket-Accept`: the key and the protocol's GUID, hashed (section 4.2.2).
    static func accept(key: String) -> String {
        Data(Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
    }
}
