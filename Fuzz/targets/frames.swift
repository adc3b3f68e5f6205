// Fuzzes the WebSocket frame reader the server runs on every client's bytes (its loop, as
// WebSocketHandler runs it), the close-payload check and the permessage-deflate offer
// parser: never a crash, and what is accepted keeps the RFC's rules: a header is whole
// only once every byte of it is there, lengths within the limit, control frames short and
// unfragmented, unmasking twice gives the bytes back.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let maxPayload = 1024
    var bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let deflate = size > 0 && data[0] & 1 == 1
    var offset = 0
    while offset < bytes.count {
        let parsed: WebSocketFrameHeader.Parsed
        do {
            parsed = try bytes[offset...].withUnsafeBytes { try WebSocketFrameHeader.parse($0, maxPayload: maxPayload, compressionNegotiated: deflate) }
        } catch {
            let code = (error as? WebSocketFrameHeader.Violation)?.code
            precondition(code == 1002 || code == 1009, "unexpected error \(error)")
            break
        }
        guard case .frame(let header) = parsed else { break }
        precondition([6, 8, 14].contains(header.headerLength), "header length \(header.headerLength)")
        precondition(header.headerLength <= bytes.count - offset)
        precondition(header.payloadLength <= maxPayload)
        precondition(!header.opcode.isControl || (header.fin && header.payloadLength <= 125))
        precondition(!header.compressed || deflate)
        // Every shorter prefix of the header is incomplete, never another frame.
        for end in 0..<header.headerLength {
            let prefix = try? bytes[offset..<(offset + end)].withUnsafeBytes { try WebSocketFrameHeader.parse($0, maxPayload: maxPayload, compressionNegotiated: deflate) }
            precondition(prefix == nil || prefix == .incomplete, "a prefix of \(end) bytes parsed as a frame")
        }
        let start = offset + header.headerLength
        guard start + header.payloadLength <= bytes.count else { break }
        let original = Array(bytes[start..<(start + header.payloadLength)])
        bytes[start..<(start + header.payloadLength)].withUnsafeMutableBytes { header.unmask($0) }
        if header.opcode == .close {
            _ = try? bytes[start..<(start + header.payloadLength)].withUnsafeBytes { try WebSocketFrameHeader.closePayload($0) }
        }
        bytes[start..<(start + header.payloadLength)].withUnsafeMutableBytes { header.unmask($0) }
        precondition(Array(bytes[start..<(start + header.payloadLength)]) == original, "unmasking twice changed the payload")
        offset = start + header.payloadLength
    }
    if let text = String(validating: UnsafeBufferPointer(start: data, count: size), as: UTF8.self) {
        if let answer = PerMessageDeflateOffer.negotiate([text]) { precondition(answer == PerMessageDeflateOffer.response) }
    }
    return 0
}
