import SwitchboardCore

/// Who is subscribed to a presence channel (SPEC sections 3 and 7). The hub announces joins
/// and leaves to this node's subscribers itself; an implementation records them for the
/// rest of the cluster and answers `members` for all of it.
public protocol Presence: Sendable {
    /// `member` joined `channel` on this node. Calls for one member arrive in order.
    func joined(_ member: Member, channel: String)
    /// `member` left `channel` on this node.
    func left(_ member: Member, channel: String)
    /// The members on every node, `local` (this node's, which are always current) included,
    /// in client order.
    func members(channel: String, local: [Member]) async throws -> [Member]
}

/// Presence of one node alone: the hub's members are all there is.
public struct LocalPresence: Presence {
    public init() {}
    public func joined(_ member: Member, channel: String) {}
    public func left(_ member: Member, channel: String) {}
    public func members(channel: String, local: [Member]) async throws -> [Member] { local }
}
