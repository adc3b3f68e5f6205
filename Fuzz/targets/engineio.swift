// Fuzzes Engine.IO packet and polling-payload parsing: never crashes, and what parses
// re-encodes to a payload that parses to the same packets.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self),
          let packets = try? EngineIOPacket.parsePayload(text)
    else { return 0 }
    let again = try! EngineIOPacket.parsePayload(EngineIOPacket.payload(packets.map(\.text)))
    precondition(again == packets, "round trip changed \(packets)")
    return 0
}
