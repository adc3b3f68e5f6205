// Fuzzes Socket.IO packet parsing and its validity rules: never crashes, and what parses
// encodes to a packet that parses back to the same.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self),
          let packet = try? SocketIOPacket.parse(text)
    else { return 0 }
    // Compared as text: 2467e0 and 2467 are one number in two spellings.
    let again = try! SocketIOPacket.parse(packet.encoded)
    precondition(again.encoded == packet.encoded, "round trip changed \(packet.encoded)")
    return 0
}
