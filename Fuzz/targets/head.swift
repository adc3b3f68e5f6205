// Fuzzes the reader of a connection's first request head, which every client's first bytes
// pass through before any HTTP parser: never a crash, and what it accepts keeps its rules:
// the head ends where it says, a shorter prefix is incomplete, the same bytes read the same,
// names are tokens, values hold no line breaks.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let limit = 2048
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    switch RequestHead.parse(bytes, limit: limit) {
    case .incomplete:
        precondition(size <= limit, "incomplete beyond the limit")
    case .tooLarge:
        precondition(size > limit, "too large within the limit")
    case .malformed:
        break
    case .head(let head, let length):
        precondition(length <= size && length <= limit + 1, "length \(length) of \(size)")
        precondition(RequestHead.parse(UnsafeRawBufferPointer(rebasing: bytes[..<length]), limit: limit) == .head(head, length: length))
        precondition(RequestHead.parse(UnsafeRawBufferPointer(rebasing: bytes[..<(length - 1)]), limit: limit) == .incomplete)
        precondition(RequestHead.parse(UnsafeRawBufferPointer(rebasing: bytes[..<(length / 2)]), limit: limit) == .incomplete)
        precondition(["HTTP/1.0", "HTTP/1.1"].contains(head.version))
        for field in head.fields {
            precondition(!field.name.isEmpty && !field.name.contains(":") && !field.name.contains(" "))
            precondition(!field.value.contains("\r") && !field.value.contains("\n"))
            precondition(field.value == field.value.trimmingSpaces)
        }
        _ = head.asksForWebSocket
    }
    return 0
}
