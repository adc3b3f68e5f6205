import Testing
@testable import SwitchboardServer

@Suite("Client address behind proxies")
struct ClientAddressTests {
    let proxies = ClientAddress(trustedProxies: ["10.0.0.0/8", "127.0.0.1", "fd00::/8"].compactMap(AddressRange.init))

    @Test("an untrusted peer is the client, whatever it forwards")
    func untrustedPeer() {
        #expect(proxies.resolve(peer: "203.0.113.9", forwardedFor: ["1.2.3.4"], forwarded: []) == "203.0.113.9")
        #expect(ClientAddress(trustedProxies: []).resolve(peer: "127.0.0.1", forwardedFor: ["1.2.3.4"], forwarded: []) == "127.0.0.1")
    }

    @Test("from a trusted peer: the right-most untrusted address of X-Forwarded-For")
    func rightMostUntrusted() {
        #expect(proxies.resolve(peer: "127.0.0.1", forwardedFor: ["6.6.6.6, 198.51.100.7, 10.1.2.3"], forwarded: []) == "198.51.100.7")
        #expect(proxies.resolve(peer: "10.0.0.2", forwardedFor: ["6.6.6.6", "198.51.100.7"], forwarded: []) == "198.51.100.7")
        // Every hop trusted: the left-most.
        #expect(proxies.resolve(peer: "127.0.0.1", forwardedFor: ["10.9.9.9, 10.1.1.1"], forwarded: []) == "10.9.9.9")
        // Nothing forwarded: the peer.
        #expect(proxies.resolve(peer: "127.0.0.1", forwardedFor: [], forwarded: []) == "127.0.0.1")
    }

    @Test("Forwarded: for= with quotes, ports and IPv6")
    func forwarded() {
        #expect(proxies.resolve(peer: "127.0.0.1", forwardedFor: [], forwarded: [#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.5"#]) == "2001:db8::1")
        #expect(proxies.resolve(peer: "127.0.0.1", forwardedFor: [], forwarded: ["for=192.0.2.60;proto=http;by=203.0.113.43"]) == "192.0.2.60")
    }

    @Test("CIDR ranges, IPv4-mapped IPv6, and bad ranges")
    func ranges() {
        let range = AddressRange("192.168.0.0/16")!
        #expect(range.contains(IPAddress("192.168.44.1")!))
        #expect(!range.contains(IPAddress("192.169.0.1")!))
        #expect(range.contains(IPAddress("::ffff:192.168.1.1")!))
        #expect(AddressRange("fd00::/8")!.contains(IPAddress("fd12::1")!))
        #expect(AddressRange("10.0.0.0/33") == nil)
        #expect(AddressRange("not-an-ip") == nil)
    }
}
