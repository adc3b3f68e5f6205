/// Validated names from SPEC section 1.
public enum Names {
    /// `^[A-Za-z0-9_-]{1,64}$`
    public static func isCollection(_ s: some StringProtocol) -> Bool {
        s.utf8.count >= 1 && s.utf8.count <= 64 && s.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// `^[A-Za-z0-9_.:@-]{1,200}$`
    public static func isChannel(_ s: some StringProtocol) -> Bool {
        s.utf8.count >= 1 && s.utf8.count <= 200 && s.utf8.allSatisfy { isAlnum($0) || channelPunctuation.contains($0) }
    }

    /// A channel name from a client, or the error that says what a name may be.
    public static func channel(_ name: String) throws(ProtocolError) -> String {
        guard isChannel(name) else {
            throw .badRequest("bad channel name \"\(name.prefix(64))\": use 1-200 of A-Z a-z 0-9 _ . : @ -")
        }
        return name
    }

    /// Record ids: like channel names, so `collection:C` events and URLs stay unambiguous.
    public static func isRecordID(_ s: some StringProtocol) -> Bool {
        s.utf8.count >= 1 && s.utf8.count <= 200 && s.utf8.allSatisfy { isAlnum($0) || recordPunctuation.contains($0) }
    }

    /// Top-level data field names usable in `filter[FIELD]`.
    public static func isField(_ s: some StringProtocol) -> Bool {
        s.utf8.count >= 1 && s.utf8.count <= 64 && s.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    /// The namespace is the part before the first `:`; none is the default namespace `""`.
    public static func namespace(of channel: String) -> String {
        guard let colon = channel.firstIndex(of: ":") else { return "" }
        return String(channel[..<colon])
    }

    public static let collectionNamespace = "collection"
    public static let systemNamespace = "sys"

    public static func collectionChannel(_ collection: String) -> String { "collection:\(collection)" }

    private static let channelPunctuation: Set<UInt8> = Set("_.:@-".utf8)
    private static let recordPunctuation: Set<UInt8> = Set("_.@-~".utf8)

    private static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
    }
}
