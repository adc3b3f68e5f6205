/// A place in a channel's stream: the epoch of its history and the last offset seen.
public struct Position: Sendable, Hashable, CustomStringConvertible {
    public var epoch: String
    public var offset: Int64

    public init(epoch: String, offset: Int64) {
        self.epoch = epoch
        self.offset = offset
    }

    /// `EPOCH:OFFSET`, as used in query strings.
    public var description: String { "\(epoch):\(offset)" }

    /// Parses `EPOCH:OFFSET` (the epoch never contains `:`).
    public init?(_ text: some StringProtocol) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        let epoch = text[..<colon]
        guard !epoch.isEmpty, epoch.utf8.count <= 64, !epoch.contains(":"),
              let offset = Int64(text[text.index(after: colon)...]), offset >= 0
        else { return nil }
        self.init(epoch: String(epoch), offset: offset)
    }

    /// Parses the `{"epoch": "…", "offset": N}` object of the WebSocket protocol.
    public init?(json: JSONValue) {
        guard let epoch = json["epoch"]?.stringValue, !epoch.isEmpty,
              let offset = json["offset"]?.intValue, offset >= 0
        else { return nil }
        self.init(epoch: epoch, offset: offset)
    }
}
