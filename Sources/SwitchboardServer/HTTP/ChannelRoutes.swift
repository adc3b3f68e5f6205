import Hummingbird
import SwitchboardCore

/// `/v1/channels…`: publish over REST, read history, list channels (SPEC section 2).
struct ChannelRoutes {
    typealias Context = SwitchboardRequestContext
    let node: Node
    let limits: Limits

    func register(on router: Router<Context>) {
        router.get("v1/channels", use: listChannels)
        router.post("v1/channels/:channel/messages", use: publish)
        router.get("v1/channels/:channel/messages", use: history)
        router.get("v1/channels/:channel/presence", use: presence)
    }

    func publish(_ request: Request, context: Context) async throws -> Response {
        let channel = try Self.channelName(context)
        try node.access(context.identity).check(.publishOverREST, channel: channel)
        let body = try await request.jsonObjectBody(limit: limits.bodyBytes)
        guard let data = body["data"] else {
            throw ProtocolError.badRequest("the body needs \"data\": {\"data\": any JSON}")
        }
        for key in body.keys where key != "data" && key != "idempotency_key" {
            throw ProtocolError.badRequest("unknown field \"\(key)\"; the body is {\"data\": …, \"idempotency_key\"?: string}")
        }
        var idempotencyKey: String?
        if let key = body["idempotency_key"], key != .null {
            guard case .string(let s) = key else {
                throw ProtocolError.badRequest("\"idempotency_key\" must be a string, not \(key.typeName)")
            }
            idempotencyKey = s
        }
        let result = try await node.publish(channel: channel, data: data, idempotencyKey: idempotencyKey)
        return .json(
            ["channel": .string(channel), "epoch": .string(result.position.epoch), "offset": .int(result.position.offset)],
            status: result.duplicate ? .ok : .created
        )
    }

    func history(_ request: Request, context: Context) async throws -> Response {
        let channel = try Self.channelName(context)
        try node.access(context.identity).check(.history, channel: channel)
        var since: Position?
        var limit = 100
        for (name, value) in request.decodedQuery {
            switch name {
            case "since": since = try QueryValue.position(value)
            case "limit": limit = try QueryValue.int(value, name: "limit", in: 1...1000)
            default:
                continue
            }
        }
        return .json(try await node.historyJSON(channel: channel, since: since, limit: limit))
    }

    func presence(_ request: Request, context: Context) async throws -> Response {
        let channel = try Self.channelName(context)
        try node.access(context.identity).check(.presence, channel: channel)
        let members = try await node.members(channel: channel).map(\.json)
        return .json(["channel": .string(channel), "members": .array(members)])
    }

    func listChannels(_ request: Request, context: Context) async throws -> Response {
        try node.access(context.identity).checkAdminister("listing channels")
        // Every node's subscribers (SPEC section 7).
        var counts: [String: Int] = [:]
        for report in try await node.clusterReports() { counts.merge(report.channels, uniquingKeysWith: +) }
        let channels: [JSONValue] = counts.keys.sorted().map { name in
            ["channel": .string(name), "subscribers": .int(Int64(counts[name]!))]
        }
        return .json(["channels": .array(channels)])
    }

    static func channelName(_ context: Context) throws -> String {
        try QueryValue.channel(context.parameters.decoded("channel"))
    }
}
