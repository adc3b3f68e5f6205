/// A JSON record of a collection (SPEC section 1).
public struct Record: Sendable, Equatable {
    public var id: String
    public var version: Int64
    public var createdAt: String
    public var updatedAt: String
    public var data: [String: JSONValue]

    public init(id: String, version: Int64, createdAt: String, updatedAt: String, data: [String: JSONValue]) {
        self.id = id
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.data = data
    }

    public var json: JSONValue {
        [
            "id": .string(id), "version": .int(version), "created_at": .string(createdAt),
            "updated_at": .string(updatedAt), "data": .object(data),
        ]
    }
}
