/// One message of a channel at its offset. `data` is kept as serialized JSON so that it is
/// encoded once, when published, and copied verbatim into every frame and history reply.
public struct ChannelMessage: Sendable, Equatable {
    public var channel: String
    public var epoch: String
    public var offset: Int64
    public var data: String

    public init(channel: String, epoch: String, offset: Int64, data: String) {
        self.channel = channel
        self.epoch = epoch
        self.offset = offset
        self.data = data
    }

    public var position: Position { Position(epoch: epoch, offset: offset) }

    /// `{"channel":…,"data":…,"epoch":…,"offset":…,"type":"message"}` (sorted keys).
    public var json: String {
        var out = "{\"channel\":"
        out.reserveCapacity(channel.utf8.count + data.utf8.count + epoch.utf8.count + 64)
        JSONValue.writeString(channel, to: &out)
        out += ",\"data\":"
        out += data
        out += ",\"epoch\":"
        JSONValue.writeString(epoch, to: &out)
        out += ",\"offset\":"
        out += String(offset)
        out += ",\"type\":\"message\"}"
        return out
    }
}
