/// permessage-deflate negotiation (RFC 7692 section 7.1), as the server answers a client's
/// `Sec-WebSocket-Extensions` offers: a pure function, unit-tested without sockets.
///
/// The server compresses each message once for every subscriber, so it keeps no context
/// between messages (`server_no_context_takeover`) and asks the client to keep none either
/// (`client_no_context_takeover`, which a server may add to any offer), so that no
/// connection holds a compressor or a decompressor of its own. It compresses with a
/// 32 KiB window: an offer that limits the server's window (`server_max_window_bits` below
/// 15) is declined, and the next offer, or no compression, is taken.
public enum PerMessageDeflateOffer {
    /// The response header value for the first acceptable offer among the request's
    /// `Sec-WebSocket-Extensions` header values; nil when none is.
    public static func negotiate(_ headerValues: [String]) -> String? {
        for value in headerValues {
            for offer in value.split(separator: ",") {
                if accepts(offer) { return response }
            }
        }
        return nil
    }

    public static let response = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

    /// Whether one offer (`permessage-deflate; param[=value]; …`) can be accepted as
    /// answered above. Unknown, repeated or malformed parameters decline it (section 7.1).
    static func accepts(_ offer: Substring) -> Bool {
        let parts = offer.split(separator: ";", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        guard parts.first?.lowercased() == "permessage-deflate" else { return false }
        var seen: Set<String> = []
        for part in parts.dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = pair[0].trimmingSpaces.lowercased()
            var value = pair.count > 1 ? pair[1].trimmingSpaces : nil
            if let quoted = value, quoted.count >= 2, quoted.hasPrefix("\""), quoted.hasSuffix("\"") {
                value = String(quoted.dropFirst().dropLast())
            }
            guard seen.insert(name).inserted else { return false }
            switch name {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard value == nil else { return false }
            case "server_max_window_bits":
                // We compress with 15 bits: only an offer that allows them is accepted.
                guard let value, let bits = windowBits(value), bits == 15 else { return false }
            case "client_max_window_bits":
                // The client may use up to what it offers; we inflate any window up to 15 bits.
                if let value, windowBits(value) == nil { return false }
            default:
                return false
            }
        }
        return true
    }

    private static func windowBits(_ text: String) -> Int? {
        guard text.count <= 2, text.allSatisfy({ $0.isASCII && $0.isNumber }), let bits = Int(text), (8...15).contains(bits) else { return nil }
        return bits
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (optional whitespace in HTTP fields,
    /// RFC 9110 section 5.6.3). The server's request-head reader uses it too.
    package var trimmingSpaces: String {
        let text = Substring(self)
        let isSpace = { (byte: UInt8) in byte == 32 || byte == 9 }
        guard let first = text.utf8.firstIndex(where: { !isSpace($0) }), let last = text.utf8.lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(text[first..<text.utf8.index(after: last)])
    }
}
