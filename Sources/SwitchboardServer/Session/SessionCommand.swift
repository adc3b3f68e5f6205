import SwitchboardCore

/// What a client asks of its session (SPEC section 3's ops), whatever wire format it came in.
enum SessionCommand: Sendable {
    case ping
    case subscribe(channel: String, since: Position?, presence: Bool)
    case unsubscribe(channel: String)
    case publish(channel: String, data: JSONValue, idempotencyKey: String?)
    case history(channel: String, since: Position?, limit: Int)
    case presence(channel: String)
    case auth(token: String)
    case refresh(token: String)

    var name: String {
        switch self {
        case .ping: "ping"
        case .subscribe: "subscribe"
        case .unsubscribe: "unsubscribe"
        case .publish: "publish"
        case .history: "history"
        case .presence: "presence"
        case .auth: "auth"
        case .refresh: "refresh"
        }
    }

    /// A `/v1/ws` command's fields, checked; every fault is a `bad_request` that names the field.
    init(_ command: ClientCommand) throws(ProtocolError) {
        switch command.op {
        case .ping: self = .ping
        case .subscribe:
            self = .subscribe(channel: try command.channel(), since: try command.since(), presence: try command.optionalBool("presence") ?? false)
        case .unsubscribe: self = .unsubscribe(channel: try command.channel())
        case .publish:
            let channel = try command.channel()
            guard let data = command.fields["data"] else { throw .badRequest("publish needs \"data\"") }
            self = .publish(channel: channel, data: data, idempotencyKey: try command.optionalString("idempotency_key"))
        case .history:
            self = .history(
                channel: try command.channel(), since: try command.since(), limit: Int(try command.optionalInt("limit", in: 1...1000) ?? 100)
            )
        case .presence: self = .presence(channel: try command.channel())
        case .auth: self = .auth(token: try command.requiredString("token"))
        case .refresh: self = .refresh(token: try command.requiredString("token"))
        }
    }
}
