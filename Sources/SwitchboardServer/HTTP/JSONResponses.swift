import Foundation
import Hummingbird
import SwitchboardCore

extension Response {
    /// A JSON response from already-serialized text.
    static func json(_ text: String, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        json(value.serialized, status: status, headers: headers)
    }
}

extension Request {
    /// Reads the body (up to `limit` bytes) and parses it as JSON. Errors name what is wrong.
    func jsonBody(limit: Int) async throws -> JSONValue {
        try checkJSONContentType()
        if let length = headers[.contentLength].flatMap(Int.init), length > limit {
            throw ProtocolError(.tooLarge, "request body of \(length) bytes is over the \(limit)-byte limit")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw ProtocolError(.tooLarge, "request body is over the \(limit)-byte limit")
        }
        guard buffer.readableBytes > 0 else { throw ProtocolError.badRequest("request body is empty; send a JSON object") }
        do {
            return try JSONValue.parse(buffer.readableBytesView)
        } catch {
            throw ProtocolError.badRequest("request body is not valid JSON: \(error)")
        }
    }

    /// The body as a JSON object.
    func jsonObjectBody(limit: Int) async throws -> [String: JSONValue] {
        let value = try await jsonBody(limit: limit)
        guard case .object(let object) = value else {
            throw ProtocolError.badRequest("request body must be a JSON object, not \(value.typeName)")
        }
        return object
    }

    /// Bodies are parsed as JSON whatever their Content-Type (curl sends form encoding by
    /// default); only a JSON Patch, which we would misread as a merge patch, is refused.
    func checkJSONContentType() throws {
        guard let type = headers[.contentType] else { return }
        let media = type.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        if media == "application/json-patch+json" {
            throw ProtocolError(.unsupportedMediaType, "JSON Patch is not supported; send a JSON Merge Patch as application/merge-patch+json")
        }
    }

    /// Query parameters with percent-decoded names (`filter%5Bx%5D` is `filter[x]`).
    var decodedQuery: [(name: String, value: String)] {
        uri.queryParameters.map { (name: String($0.key).removingPercentEncoding ?? String($0.key), value: String($0.value)) }
    }
}

/// Query parameter values shared by several routes, each refused with a message naming it.
enum QueryValue {
    static func position(_ value: String, name: String = "since") throws -> Position {
        guard let position = Position(value) else {
            throw ProtocolError.badRequest("\(name) must be EPOCH:OFFSET, not \"\(value.prefix(80))\"")
        }
        return position
    }

    static func int(_ value: String, name: String, in range: ClosedRange<Int>) throws -> Int {
        guard let n = Int(value), range.contains(n) else {
            throw ProtocolError.badRequest("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound), not \"\(value.prefix(20))\"")
        }
        return n
    }

    static func channel(_ value: String) throws -> String {
        try Access.channel(value)
    }
}

extension Parameters {
    /// A path parameter, percent-decoded.
    func decoded(_ name: String) -> String {
        let raw = get(name) ?? ""
        return raw.removingPercentEncoding ?? raw
    }
}
