import Testing
import SwitchboardCore

/// The frame-header parser the server reads every client frame with, and the
/// permessage-deflate negotiation: pure functions, checked without sockets.
@Suite("WebSocket frame header and permessage-deflate negotiation")
struct FrameHeaderTests {
    static func parse(_ bytes: [UInt8], max: Int = 1 << 20, deflate: Bool = false) throws -> WebSocketFrameHeader.Parsed {
        try bytes.withUnsafeBytes { try WebSocketFrameHeader.parse($0, maxPayload: max, compressionNegotiated: deflate) }
    }

    static func code(_ bytes: [UInt8], max: Int = 1 << 20, deflate: Bool = false) -> UInt16? {
        do {
            _ = try parse(bytes, max: max, deflate: deflate)
            return nil
        } catch {
            return (error as? WebSocketFrameHeader.Violation)?.code
        }
    }

    @Test("lengths of 7, 16 and 64 bits; incomplete until the mask key is there")
    func lengths() throws {
        let short: [UInt8] = [0x81, 0x85, 1, 2, 3, 4]
        for end in 0..<short.count { #expect(try Self.parse(Array(short[..<end])) == .incomplete) }
        guard case .frame(let a) = try Self.parse(short) else { Issue.record("no frame"); return }
        #expect(a.payloadLength == 5 && a.headerLength == 6 && a.fin && a.opcode == .text && !a.compressed)

        let medium: [UInt8] = [0x02, 0xFE, 0x01, 0x00, 9, 9, 9, 9]
        for end in 0..<medium.count { #expect(try Self.parse(Array(medium[..<end])) == .incomplete) }
        guard case .frame(let b) = try Self.parse(medium) else { Issue.record("no frame"); return }
        #expect(b.payloadLength == 256 && b.headerLength == 8 && !b.fin && b.opcode == .binary)

        let long: [UInt8] = [0x80, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 5, 6, 7, 8]
        guard case .frame(let c) = try Self.parse(long) else { Issue.record("no frame"); return }
        #expect(c.payloadLength == 65536 && c.headerLength == 14 && c.opcode == .continuation)
    }

    @Test("breaches and their codes: 1002 for the protocol, 1009 for size")
    func violations() {
        #expect(Self.code([0x81, 0x05]) == 1002, "unmasked")
        #expect(Self.code([0xA1, 0x80, 0, 0, 0, 0]) == 1002, "RSV2")
        #expect(Self.code([0xC1, 0x80, 0, 0, 0, 0]) == 1002, "RSV1 not negotiated")
        #expect(Self.code([0xC1, 0x80, 0, 0, 0, 0], deflate: true) == nil, "RSV1 negotiated")
        #expect(Self.code([0xC0, 0x80, 0, 0, 0, 0], deflate: true) == 1002, "RSV1 on a continuation")
        #expect(Self.code([0xC9, 0x80, 0, 0, 0, 0], deflate: true) == 1002, "RSV1 on a ping")
        #expect(Self.code([0x83, 0x80]) == 1002, "opcode 3")
        #expect(Self.code([0x09, 0x80]) == 1002, "fragmented ping")
        #expect(Self.code([0x89, 0xFE, 0, 126]) == 1002, "ping over 125 bytes")
        #expect(Self.code([0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]) == 1002, "top bit of a 64-bit length")
        #expect(Self.code([0x81, 0xFE, 0x04, 0x01], max: 1024) == 1009)
        #expect(Self.code([0x81, 0xFE, 0x04, 0x00], max: 1024) == nil)
        #expect(Self.code([0x81, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0], max: 1024) == 1009)
    }

    @Test("unmasking: word by word, from any phase, gives what byte by byte does")
    func unmasking() throws {
        guard case .frame(let header) = try Self.parse([0x81, 0x80, 0x12, 0x34, 0x56, 0x78]) else { Issue.record("no frame"); return }
        let key: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        for count in [0, 1, 3, 7, 8, 9, 31, 100] {
            for start in 0..<4 {
                let plain = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
                var bytes = plain.enumerated().map { $0.element ^ key[($0.offset + start) & 3] }
                bytes.withUnsafeMutableBytes { header.unmask($0, start: start) }
                #expect(bytes == plain, "\(count) bytes from phase \(start)")
            }
        }
    }

    @Test("close payloads (RFC 6455 section 7.4)")
    func closePayloads() throws {
        func check(_ bytes: [UInt8]) throws -> (code: UInt16, reason: String)? {
            try bytes.withUnsafeBytes { try WebSocketFrameHeader.closePayload($0) }
        }
        #expect(try check([]) == nil)
        #expect(try check([0x03, 0xE8, 0x6F, 0x6B])?.code == 1000)
        #expect(try check([0x0F, 0xA0])?.code == 4000)
        #expect(throws: WebSocketFrameHeader.Violation(code: 1002, description: "a close frame with a one-byte payload")) { try check([0x03]) }
        for code: UInt16 in [999, 1004, 1005, 1006, 1015, 2000, 5000] {
            #expect((try? check([UInt8(code >> 8), UInt8(code & 0xFF)])) == nil, "\(code)")
        }
        do {
            _ = try check([0x03, 0xE8, 0xFF])
            Issue.record("accepted a reason that is not UTF-8")
        } catch {
            #expect((error as? WebSocketFrameHeader.Violation)?.code == 1007)
        }
    }

    @Test("permessage-deflate: the first acceptable offer is answered without context takeover; limits on the server's window decline an offer")
    func negotiation() {
        let answer = PerMessageDeflateOffer.response
        #expect(PerMessageDeflateOffer.negotiate(["permessage-deflate; client_max_window_bits"]) == answer)
        #expect(PerMessageDeflateOffer.negotiate(["permessage-deflate"]) == answer)
        #expect(PerMessageDeflateOffer.negotiate(["x-webkit-deflate-frame", "permessage-deflate;client_no_context_takeover"]) == answer)
        #expect(PerMessageDeflateOffer.negotiate(["permessage-deflate; server_max_window_bits=15"]) == answer)
        #expect(PerMessageDeflateOffer.negotiate(["permessage-deflate; client_max_window_bits=\"10\""]) == answer)
        #expect(PerMessageDeflateOffer.negotiate(["permessage-deflate; server_max_window_bits=10, permessage-deflate"]) == answer)
        #expect(PerMessageDeflateOffer.negotiate(["permessage-deflate; server_max_window_bits=10"]) == nil)
        #expect(PerMessageDeflateOffer.negotiate(["permessage-deflate; client_max_window_bits=16"]) == nil)
        #expect(PerMessageDeflateOffer.negotiate(["permessage-deflate; server_no_context_takeover; server_no_context_takeover"]) == nil)
        #expect(PerMessageDeflateOffer.negotiate(["permessage-deflate; mystery"]) == nil)
        #expect(PerMessageDeflateOffer.negotiate(["permessage-deflate; server_no_context_takeover=1"]) == nil)
        #expect(PerMessageDeflateOffer.negotiate([]) == nil)
    }
}
