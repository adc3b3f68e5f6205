/// The positions of several channels in one string, `CHANNEL@EPOCH:OFFSET;…`: an SSE event's
/// `id` (so that `Last-Event-ID` resumes every channel of a stream) and a Socket.IO event's
/// recovery offset. Channel names may contain `@`; epochs never do, so the last `@` of an
/// entry separates them.
public enum PositionList {
    /// The entries of `positions` for `channels`, in that order (channels without a position are left out).
    public static func format(_ positions: [String: Position], order channels: some Sequence<String>) -> String {
        channels.compactMap { channel in positions[channel].map { "\(channel)@\($0)" } }.joined(separator: ";")
    }

    /// The positions in `text`; entries that do not parse are left out.
    public static func parse(_ text: some StringProtocol) -> [String: Position] {
        var result: [String: Position] = [:]
        for entry in text.split(separator: ";") {
            guard let at = entry.lastIndex(of: "@") else { continue }
            let channel = String(entry[..<at])
            guard Names.isChannel(channel), let position = Position(entry[entry.index(after: at)...]) else { continue }
            result[channel] = position
        }
        return result
    }
}
