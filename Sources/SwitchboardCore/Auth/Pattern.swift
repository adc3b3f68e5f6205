/// A grant pattern from a token: an exact name, or a prefix followed by `*` (suffix wildcard).
/// `chat:*` matches `chat:lobby` but not `chatroom:x`; `*` matches everything.
public enum Pattern {
    public static func matches(_ pattern: String, _ name: String) -> Bool {
        if pattern.hasSuffix("*") {
            return name.hasPrefix(pattern.dropLast())
        }
        return pattern == name
    }

    public static func anyMatches(_ patterns: [String], _ name: String) -> Bool {
        patterns.contains { matches($0, name) }
    }
}
