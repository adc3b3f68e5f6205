import Foundation
import SwitchboardCore

/// Engine.IO v4 packets (the transport under Socket.IO): a type digit and its data, one per
/// WebSocket frame, or batched in a long-polling body with `\x1e` between them.
enum EngineIOPacket: Equatable, Sendable {
    case open(String)
    case close
    case ping(String)
    case pong(String)
    case message(String)
    /// Binary data: a WebSocket binary frame, or `b` and base64 in a polling body.
    case binary([UInt8])
    case upgrade
    case noop

    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    /// The record separator between the packets of a polling body.
    static let separator: Character = "\u{1e}"

    /// One text packet (a WebSocket text frame, or one entry of a polling body).
    static func parse(_ text: Substring) throws(Invalid) -> EngineIOPacket {
        guard let type = text.first else { throw Invalid(description: "an empty packet") }
        let data = String(text.dropFirst())
        switch type {
        case "0": return .open(data)
        case "1": return .close
        case "2": return .ping(data)
        case "3": return .pong(data)
        case "4": return .message(data)
        case "5": return .upgrade
        case "6": return .noop
        case "b":
            guard let bytes = Data(base64Encoded: data) else { throw Invalid(description: "binary packet that is not base64") }
            return .binary(Array(bytes))
        default:
            throw Invalid(description: "unknown packet type \"\(type)\"")
        }
    }

    /// The packets of a polling body, in order; an empty body has none.
    static func parsePayload(_ body: String) throws(Invalid) -> [EngineIOPacket] {
        guard !body.isEmpty else { return [] }
        var packets: [EngineIOPacket] = []
        for entry in body.split(separator: separator, omittingEmptySubsequences: false) {
            packets.append(try parse(entry))
        }
        return packets
    }

    /// The packet as text (binary as `b` and base64).
    var text: String {
        switch self {
        case .open(let data): "0" + data
        case .close: "1"
        case .ping(let data): "2" + data
        case .pong(let data): "3" + data
        case .message(let data): "4" + data
        case .binary(let bytes): "b" + Data(bytes).base64EncodedString()
        case .upgrade: "5"
        case .noop: "6"
        }
    }

    /// A polling body of `packets`.
    static func payload(_ packets: some Sequence<String>) -> String {
        packets.joined(separator: String(separator))
    }
}

/// The errors of an Engine.IO HTTP request, as Engine.IO servers answer them: a JSON body
/// with a code, status 400 (403 for code 4).
struct EngineIOError: Error, Equatable {
    let code: Int
    let message: String
    /// The HTTP status, when not the protocol's default for the code.
    var status: Int?

    static let transportUnknown = EngineIOError(code: 0, message: "Transport unknown")
    static let sessionUnknown = EngineIOError(code: 1, message: "Session ID unknown")
    static let badHandshakeMethod = EngineIOError(code: 2, message: "Bad handshake method")
    static let badRequest = EngineIOError(code: 3, message: "Bad request")
    static let unsupportedVersion = EngineIOError(code: 5, message: "Unsupported protocol version")
    /// A handshake refused by the checks every connection passes: Engine.IO's code 4
    /// ("Forbidden"), with the refusal's own status (403 origin, 429 limits).
    static func refused(_ refusal: ProtocolError) -> EngineIOError {
        EngineIOError(code: 4, message: refusal.message, status: refusal.code.httpStatus)
    }

    var httpStatus: Int { status ?? (code == 4 ? 403 : 400) }
    var body: String { #"{"code":\#(code),"message":\#(JSONValue.quoted(message))}"# }
}
