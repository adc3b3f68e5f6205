import SwitchboardCore

/// What nodes tell each other through `NOTIFY switchboard` after a commit. The messages
/// table is the truth; a notification is only a hint that saves a read, so one that is lost
/// (a listener reconnecting, a node killed between commit and notify) costs latency, never
/// a message: the listener's catch-up and the poller read what it would have said.
///
/// A payload is one or more lines (`\n`-separated; names, epochs and our compact JSON
/// contain no newline), each one of:
///
///     m OFFSET EPOCH CHANNEL DATA     a message small enough to carry
///     r OFFSET EPOCH CHANNEL          a message to read from the table (too large to carry)
///     j NODE CHANNEL MEMBER           a presence join on NODE (MEMBER is JSON)
///     l NODE CHANNEL MEMBER           a presence leave
enum Notification: Equatable {
    case message(ChannelMessage)
    case reference(channel: String, epoch: String, offset: Int64)
    case presence(PresenceChange, node: String)

    /// PostgreSQL refuses payloads of 8,000 bytes or more; a batch stays below this.
    static let payloadLimit = 7900
    static let channel = "switchboard"

    /// The line for `message`: inline when small, else a reference.
    static func line(for message: ChannelMessage) -> String {
        let inline = "m \(message.offset) \(message.epoch) \(message.channel) \(message.data)"
        if inline.utf8.count < payloadLimit { return inline }
        return "r \(message.offset) \(message.epoch) \(message.channel)"
    }

    static func line(for change: PresenceChange, node: String) -> String {
        "\(change.kind == .join ? "j" : "l") \(node) \(change.channel) \(change.member.json.serialized)"
    }

    /// Joins lines into payloads under the limit, in order.
    static func payloads(_ lines: [String]) -> [String] {
        var payloads: [String] = []
        var current = ""
        for line in lines {
            if !current.isEmpty && current.utf8.count + 1 + line.utf8.count >= payloadLimit {
                payloads.append(current)
                current = ""
            }
            current += current.isEmpty ? line : "\n" + line
        }
        if !current.isEmpty { payloads.append(current) }
        return payloads
    }

    /// Parses a payload; lines that do not parse are skipped (a newer node's kinds, garbage).
    static func parse(_ payload: String) -> [Notification] {
        payload.split(separator: "\n").compactMap(parse(line:))
    }

    private static func parse(line: Substring) -> Notification? {
        let fields = line.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: false)
        guard let kind = fields.first else { return nil }
        switch kind {
        case "m" where fields.count == 5:
            guard let offset = Int64(fields[1]), Names.isChannel(fields[3]) else { return nil }
            return .message(ChannelMessage(channel: String(fields[3]), epoch: String(fields[2]), offset: offset, data: String(fields[4])))
        case "r" where fields.count == 4:
            guard let offset = Int64(fields[1]), Names.isChannel(fields[3]) else { return nil }
            return .reference(channel: String(fields[3]), epoch: String(fields[2]), offset: offset)
        case "j", "l":
            let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count == 4, Names.isChannel(parts[2]),
                  let json = try? JSONValue.parse(String(parts[3])), let member = Member(json: json)
            else { return nil }
            return .presence(PresenceChange(kind == "j" ? .join : .leave, channel: String(parts[2]), member: member), node: String(parts[1]))
        default:
            return nil
        }
    }
}
