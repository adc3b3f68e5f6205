// Fuzzes the JSON parser (every client command and REST body goes through it): it must
// never crash, and what it accepts must serialize to text that parses back to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard let value = try? JSONValue.parse(bytes) else { return 0 }
    let again = try! JSONValue.parse(value.serialized)
    precondition(again.serialized == value.serialized, "round trip changed \(value.serialized)")
    return 0
}
