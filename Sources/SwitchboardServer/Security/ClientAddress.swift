import Foundation
import NIOCore

/// Who the client is behind load balancers (SPEC section 7): from a peer in
/// `trusted_proxies`, the right-most address of `X-Forwarded-For` (or `Forwarded: for=`)
/// that is not itself trusted; from anyone else, the TCP peer, loopback included. Per-IP
/// limits and logs use it.
public struct ClientAddress: Sendable {
    public let trustedProxies: [AddressRange]

    public init(trustedProxies: [AddressRange]) {
        self.trustedProxies = trustedProxies
    }

    /// The client's address for a connection from `peer` with these header values.
    public func resolve(peer: String, forwardedFor: [String], forwarded: [String]) -> String {
        guard isTrusted(peer) else { return peer }
        var chain = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        if chain.isEmpty { chain = forwarded.flatMap(Self.forwardedFor) }
        chain.removeAll { $0.isEmpty }
        guard !chain.isEmpty else { return peer }
        for entry in chain.reversed() {
            guard let address = IPAddress(Self.stripPort(entry)) else { return Self.stripPort(entry) }
            if !isTrusted(address) { return address.description }
        }
        return IPAddress(Self.stripPort(chain[0]))?.description ?? peer
    }

    public func resolve(peer: SocketAddress?, forwardedFor: [String], forwarded: [String]) -> String {
        resolve(peer: Self.ip(of: peer), forwardedFor: forwardedFor, forwarded: forwarded)
    }

    static func ip(of address: SocketAddress?) -> String {
        guard let text = address?.ipAddress else { return "unknown" }
        return IPAddress(text)?.description ?? text
    }

    private func isTrusted(_ text: String) -> Bool {
        guard !trustedProxies.isEmpty, let address = IPAddress(text) else { return false }
        return isTrusted(address)
    }

    private func isTrusted(_ address: IPAddress) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }

    /// The `for=` values of a `Forwarded` header (RFC 7239), in order.
    static func forwardedFor(_ header: String) -> [String] {
        header.split(separator: ",").compactMap { element in
            for pair in element.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if parts.count == 2, parts[0].lowercased() == "for" {
                    return parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                }
            }
            return nil
        }
    }

    /// `[v6]:port`, `[v6]`, `v4:port` → the address alone.
    static func stripPort(_ text: String) -> String {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            return String(text[text.index(after: text.startIndex)..<close])
        }
        if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") {
            return String(text[..<colon])
        }
        return text
    }
}

/// An IPv4 or IPv6 address; IPv4-mapped IPv6 addresses are IPv4.
public struct IPAddress: Sendable, Equatable, CustomStringConvertible {
    /// 4 or 16 bytes.
    public let bytes: [UInt8]

    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let all = withUnsafeBytes(of: &v6) { Array($0) }
        bytes = all[0..<12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] ? Array(all[12...]) : all
    }

    public var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        return inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count)).map { String(cString: $0) } ?? "?"
    }
}

/// A range of `trusted_proxies`: `10.0.0.0/8`, `fd00::/8`, or a single address.
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first, let network = IPAddress(String(first)) else { return nil }
        let bits = network.bytes.count * 8
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...bits).contains(length) else { return nil }
            prefixLength = length
        } else {
            prefixLength = bits
        }
        self.network = network
    }

    public func contains(_ address: IPAddress) -> Bool {
        guard address.bytes.count == network.bytes.count else { return false }
        var remaining = prefixLength
        for (a, b) in zip(address.bytes, network.bytes) where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
            if a & mask != b & mask { return false }
            remaining -= 8
        }
        return true
    }

    public var description: String { "\(network)/\(prefixLength)" }
}
