/// Builders for the server's WebSocket frames (SPEC section 3), all with sorted keys.
public enum ServerFrames {
    public static func welcome(client: String, heartbeat: Int, version: String) -> String {
        JSONValue.object([
            "type": "welcome", "client": .string(client), "heartbeat": .int(Int64(heartbeat)), "version": .string(version),
        ]).serialized
    }

    public static func reply(id: Int64, result: JSONValue) -> String {
        reply(id: id, rawResult: result.serialized)
    }

    /// A reply whose result is already serialized (history embeds stored message JSON).
    public static func reply(id: Int64, rawResult: String) -> String {
        "{\"id\":\(id),\"result\":\(rawResult),\"type\":\"reply\"}"
    }

    public static func reply(id: Int64, error: ProtocolError) -> String {
        JSONValue.object(["type": "reply", "id": .int(id), "error": error.json]).serialized
    }

    /// For a frame that had no readable id.
    public static func error(_ error: ProtocolError) -> String {
        JSONValue.object(["type": "error", "error": error.json]).serialized
    }

    /// `{"epoch":…,"messages":[…],"offset":…}` plus any extra keys, with the stored message JSON copied in.
    public static func messagesObject(_ messages: [ChannelMessage], position: Position, extra: [String: JSONValue] = [:]) -> String {
        var fields: [(String, String)] = [
            ("epoch", JSONValue.quoted(position.epoch)),
            ("messages", "[" + messages.map(\.json).joined(separator: ",") + "]"),
            ("offset", String(position.offset)),
        ]
        for (k, v) in extra { fields.append((k, v.serialized)) }
        fields.sort { $0.0 < $1.0 }
        return "{" + fields.map { JSONValue.quoted($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }
}
