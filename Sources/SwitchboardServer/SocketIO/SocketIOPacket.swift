import SwitchboardCore

/// Socket.IO v5 packets, carried in Engine.IO `message` packets:
/// `<type>[<attachments>-][/<namespace>,][<ack id>][<JSON>]`.
struct SocketIOPacket: Equatable, Sendable {
    enum Kind: Int, Sendable {
        case connect = 0, disconnect, event, ack, connectError, binaryEvent, binaryAck
    }

    var kind: Kind
    var namespace = "/"
    var ackID: Int64?
    /// Binary attachments that follow (BINARY_EVENT, BINARY_ACK).
    var attachments = 0
    var payload: JSONValue?

    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    /// Event names a client may not emit (the client library's own).
    static let reservedEvents: Set<String> = ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]
    static let maxAttachments = 10

    /// Parses and checks a packet as Socket.IO servers do; anything invalid ends the connection.
    static func parse(_ text: String) throws(Invalid) -> SocketIOPacket {
        var rest = Substring(text)
        guard let typeCharacter = rest.first, let typeValue = typeCharacter.wholeNumberValue, let kind = Kind(rawValue: typeValue) else {
            throw Invalid(description: "unknown packet type")
        }
        rest = rest.dropFirst()
        var packet = SocketIOPacket(kind: kind)
        if kind == .binaryEvent || kind == .binaryAck {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, rest.dropFirst(digits.count).first == "-",
                  let count = Int(digits), count <= maxAttachments
            else { throw Invalid(description: "bad attachment count") }
            packet.attachments = count
            rest = rest.dropFirst(digits.count + 1)
        }
        if rest.first == "/" {
            let end = rest.firstIndex(of: ",") ?? rest.endIndex
            packet.namespace = String(rest[..<end])
            rest = end == rest.endIndex ? rest[end...] : rest[rest.index(after: end)...]
        }
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        if !digits.isEmpty {
            guard digits.count <= 18, let id = Int64(digits) else { throw Invalid(description: "bad ack id") }
            packet.ackID = id
            rest = rest.dropFirst(digits.count)
        }
        if !rest.isEmpty {
            do {
                packet.payload = try JSONValue.parse(String(rest))
            } catch {
                throw Invalid(description: "payload is not JSON")
            }
        }
        guard packet.isValid else { throw Invalid(description: "invalid payload for a \(kind) packet") }
        return packet
    }

    private var isValid: Bool {
        switch kind {
        case .connect:
            if case .object = payload ?? .object([:]) { return true }
            return false
        case .disconnect:
            return payload == nil
        case .connectError:
            switch payload {
            case .string, .object: return true
            default: return false
            }
        case .event, .binaryEvent:
            guard case .array(let args) = payload, let first = args.first else { return false }
            switch first {
            case .int, .double: return true
            case .string(let name): return !Self.reservedEvents.contains(name)
            default: return false
            }
        case .ack, .binaryAck:
            if case .array = payload { return true }
            return false
        }
    }

    /// The packet as text, the Engine.IO `message` prefix not included.
    var encoded: String {
        var out = String(kind.rawValue)
        if kind == .binaryEvent || kind == .binaryAck { out += "\(attachments)-" }
        if namespace != "/" { out += namespace + "," }
        if let ackID { out += String(ackID) }
        if let payload { payload.write(to: &out) }
        return out
    }
}
