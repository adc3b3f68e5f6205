import Crypto
import Foundation
import HTTPTypes
import SwitchboardCore

/// The WebSocket opening handshake (RFC 6455 section 4.2) as bytes: what a request must
/// carry, the 101 answer, and a refusal in the form its protocol's clients read. Answered
/// by `FirstRequestHandler` itself, with no HTTP pipeline: after the upgrade the
/// connection's pipeline holds one handler, `WebSocketHandler`.
enum WebSocketHandshake {
    /// The request as the handshake's checks see it.
    static func request(_ head: RequestHead) -> HandshakeRequest {
        let path = head.target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.target
        return HandshakeRequest(
            path: path, target: head.target, origin: head.first("origin"), host: head.first("host"),
            credential: Credentials.credential(authorization: head.first("authorization"), apiKey: head.first("x-api-key"), target: head.target),
            forwardedFor: head.values("x-forwarded-for"), forwarded: head.values("forwarded")
        )
    }

    /// The client's `Sec-WebSocket-Key`, or why this is no handshake (400).
    static func key(_ head: RequestHead) -> Result<String, ProtocolError> {
        guard head.method == "GET", head.version == "HTTP/1.1", head.lists("connection", token: "upgrade") else {
            return .failure(.badRequest("a WebSocket handshake is a GET over HTTP/1.1 with Connection: Upgrade"))
        }
        let keys = head.values("sec-websocket-key")
        guard keys.count == 1, let key = keys.first, head.first("sec-websocket-version") == "13" else {
            return .failure(.badRequest("a WebSocket handshake needs one Sec-WebSocket-Key and Sec-WebSocket-Version: 13"))
        }
        return .success(key)
    }

    /// The 101 answer, with the negotiated permessage-deflate parameters if any.
    static func switchingProtocols(key: String, extensions: String?) -> String {
        var response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: \(accept(key: key))\r\n"
        if let extensions { response += "Sec-WebSocket-Extensions: \(extensions)\r\n" }
        return response + "\r\n"
    }

    /// `Sec-WebSocket-Accept`: the key and the protocol's GUID, hashed (section 4.2.2).
    static func accept(key: String) -> String {
        Data(Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
    }

    /// A refusal as a whole HTTP/1.1 response that closes the connection: a problem
    /// document for `/v1/ws` (SPEC.md section 5), Engine.IO's `{"code","message"}` for
    /// `/socket.io/`.
    static func refusal(_ refusal: HandshakeRefusal) -> String {
        let status: HTTPResponse.Status
        let contentType: String
        let body: String
        switch refusal {
        case .problem(let error, let path):
            status = Problem.status(error)
            contentType = "application/problem+json"
            body = Problem.document(error, path: path).serialized
        case .engineIO(let error):
            status = HTTPResponse.Status(code: error.httpStatus)
            contentType = "application/json"
            body = error.body
        }
        return "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
    }
}
