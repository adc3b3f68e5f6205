/// A frame from the server on `/v1/ws` (SPEC section 3), decoded: what a client reads.
public enum ServerFrame: Sendable, Equatable {
    /// The first frame: the client's id, the heartbeat in seconds, the server's version.
    case welcome(client: String, heartbeat: Int, version: String)
    /// The answer to the command with `id`: its result, or its error.
    case reply(id: Int64, result: Result<JSONValue, ProtocolError>)
    case message(ReceivedMessage)
    case join(channel: String, member: Member)
    case leave(channel: String, member: Member)
    /// An error for a frame that had no readable id.
    case error(ProtocolError)

    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Decodes one text frame.
    public static func decode(_ text: some Collection<UInt8>) throws -> ServerFrame {
        try decode(try JSONValue.parse(text))
    }

    public static func decode(_ text: String) throws -> ServerFrame {
        try decode(try JSONValue.parse(text))
    }

    public static func decode(_ frame: JSONValue) throws(Invalid) -> ServerFrame {
        guard let type = frame["type"]?.stringValue else { throw Invalid(description: "a frame without a type") }
        switch type {
        case "welcome":
            guard let client = frame["client"]?.stringValue, let heartbeat = frame["heartbeat"]?.intValue else {
                throw Invalid(description: "a welcome without client or heartbeat")
            }
            return .welcome(client: client, heartbeat: Int(heartbeat), version: frame["version"]?.stringValue ?? "")
        case "reply":
            guard let id = frame["id"]?.intValue else { throw Invalid(description: "a reply without an id") }
            if let error = frame["error"] { return .reply(id: id, result: .failure(try Self.error(error))) }
            return .reply(id: id, result: .success(frame["result"] ?? .null))
        case "message":
            guard let channel = frame["channel"]?.stringValue, let epoch = frame["epoch"]?.stringValue,
                  let offset = frame["offset"]?.intValue
            else { throw Invalid(description: "a message without channel, epoch or offset") }
            return .message(ReceivedMessage(channel: channel, position: Position(epoch: epoch, offset: offset), data: frame["data"] ?? .null))
        case "join", "leave":
            guard let channel = frame["channel"]?.stringValue, let json = frame["member"], let member = Member(json: json) else {
                throw Invalid(description: "a \(type) without channel or member")
            }
            return type == "join" ? .join(channel: channel, member: member) : .leave(channel: channel, member: member)
        case "error":
            return .error(try Self.error(frame["error"] ?? .null))
        default:
            throw Invalid(description: "unknown frame type \"\(type)\"")
        }
    }

    /// `{"code","message","temporary"}`; a code this client does not know is `internal`.
    static func error(_ value: JSONValue) throws(Invalid) -> ProtocolError {
        guard let code = value["code"]?.stringValue, let message = value["message"]?.stringValue else {
            throw Invalid(description: "an error without code or message")
        }
        return ProtocolError(ProtocolError.Code(rawValue: code) ?? .internalError, message)
    }
}

/// A channel message as a client receives it.
public struct ReceivedMessage: Sendable, Equatable {
    public var channel: String
    public var position: Position
    public var data: JSONValue

    public init(channel: String, position: Position, data: JSONValue) {
        self.channel = channel
        self.position = position
        self.data = data
    }
}

extension Member {
    /// Reads `{"client","user","info"}`.
    public init?(json: JSONValue) {
        guard let client = json["client"]?.stringValue else { return nil }
        var info = json["info"]
        if info == .null { info = Optional.none }
        self.init(client: client, user: json["user"]?.stringValue, info: info)
    }
}

extension ClientCommand {
    /// A command frame: `{"id":ID,"op":OP,…fields}` (sorted keys), as a client sends it.
    public static func frame(id: Int64, op: Op, _ fields: [String: JSONValue] = [:]) -> String {
        var object = fields
        object["id"] = .int(id)
        object["op"] = .string(op.rawValue)
        return JSONValue.object(object).serialized
    }
}
