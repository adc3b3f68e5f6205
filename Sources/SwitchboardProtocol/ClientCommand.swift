/// A parsed client command frame: `{"id": N, "op": "…", …}`.
public struct ClientCommand: Sendable {
    public enum Op: String, Sendable, CaseIterable {
        case auth, subscribe, unsubscribe, publish, history, presence, refresh, ping
    }

    public var id: Int64
    public var op: Op
    public var fields: [String: JSONValue]

    /// Why a frame could not become a command: with an id, it is answered by an error reply;
    /// without one, by an error push.
    public struct Rejection: Error, Sendable {
        public var id: Int64?
        public var error: ProtocolError
    }

    public init(id: Int64, op: Op, fields: [String: JSONValue]) {
        self.id = id
        self.op = op
        self.fields = fields
    }

    public static func parse(_ text: some Collection<UInt8>) throws(Rejection) -> ClientCommand {
        let value: JSONValue
        do {
            value = try JSONValue.parse(text)
        } catch {
            throw Rejection(id: nil, error: .badRequest("frame is not valid JSON: \(error)"))
        }
        guard case .object(let object) = value else {
            throw Rejection(id: nil, error: .badRequest("a command must be a JSON object, not \(value.typeName)"))
        }
        guard let idValue = object["id"] else {
            throw Rejection(id: nil, error: .badRequest("command has no \"id\""))
        }
        guard case .int(let id) = idValue else {
            throw Rejection(id: nil, error: .badRequest("\"id\" must be an integer, not \(idValue.typeName)"))
        }
        guard let opValue = object["op"] else {
            throw Rejection(id: id, error: .badRequest("command has no \"op\""))
        }
        guard case .string(let opName) = opValue else {
            throw Rejection(id: id, error: .badRequest("\"op\" must be a string, not \(opValue.typeName)"))
        }
        guard let op = Op(rawValue: opName) else {
            let known = Op.allCases.map(\.rawValue).joined(separator: ", ")
            throw Rejection(id: id, error: .badRequest("unknown op \"\(opName)\"; known ops: \(known)"))
        }
        return ClientCommand(id: id, op: op, fields: object)
    }

    // MARK: Field accessors that name what is wrong.

    public func requiredString(_ key: String) throws(ProtocolError) -> String {
        guard let value = fields[key] else { throw .badRequest("\(op.rawValue) needs \"\(key)\"") }
        guard case .string(let s) = value else {
            throw .badRequest("\"\(key)\" must be a string, not \(value.typeName)")
        }
        return s
    }

    public func channel() throws(ProtocolError) -> String {
        try Names.channel(try requiredString("channel"))
    }

    public func optionalString(_ key: String) throws(ProtocolError) -> String? {
        guard let value = fields[key], value != .null else { return nil }
        guard case .string(let s) = value else {
            throw .badRequest("\"\(key)\" must be a string, not \(value.typeName)")
        }
        return s
    }

    public func optionalBool(_ key: String) throws(ProtocolError) -> Bool? {
        guard let value = fields[key], value != .null else { return nil }
        guard case .bool(let b) = value else { throw .badRequest("\"\(key)\" must be a boolean, not \(value.typeName)") }
        return b
    }

    public func optionalInt(_ key: String, in range: ClosedRange<Int64>) throws(ProtocolError) -> Int64? {
        guard let value = fields[key], value != .null else { return nil }
        guard case .int(let i) = value, range.contains(i) else {
            throw .badRequest("\"\(key)\" must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return i
    }

    public func since() throws(ProtocolError) -> Position? {
        guard let value = fields["since"], value != .null else { return nil }
        guard let position = Position(json: value) else {
            throw .badRequest("\"since\" must be {\"epoch\": string, \"offset\": integer >= 0}")
        }
        return position
    }
}
