// Fuzzes the `/v1/ws` command parser and its field accessors: refusals, never crashes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard let command = try? ClientCommand.parse(bytes) else { return 0 }
    _ = try? command.channel()
    _ = try? command.since()
    _ = try? command.optionalString("idempotency_key")
    _ = try? command.optionalBool("presence")
    _ = try? command.optionalInt("limit", in: 1...1000)
    _ = try? command.requiredString("token")
    return 0
}
