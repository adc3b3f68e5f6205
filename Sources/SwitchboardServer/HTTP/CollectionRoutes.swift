import Foundation
import Hummingbird
import SwitchboardCore

/// `/v1/collections/{c}[/{id}]`: records over REST (SPEC section 2). Every write commits its
/// change event on `collection:{c}` in the same transaction and is answered after the commit.
struct CollectionRoutes {
    typealias Context = SwitchboardRequestContext
    let node: Node
    let limits: Limits

    func register(on router: Router<Context>) {
        let group = router.group("v1/collections")
        group.get(":collection", use: list)
        group.post(":collection", use: create)
        group.get(":collection/:id", use: get)
        group.head(":collection/:id", use: get)
        group.put(":collection/:id", use: put)
        group.patch(":collection/:id", use: patch)
        group.delete(":collection/:id", use: delete)
    }

    // MARK: Handlers

    func list(_ request: Request, context: Context) async throws -> Response {
        let collection = try Self.collectionName(context)
        try checkRead(collection, context)
        var limit = 100
        var after: String?
        var filters: [(field: String, value: String)] = []
        for (name, value) in request.decodedQuery {
            switch name {
            case "limit":
                limit = try QueryValue.int(value, name: "limit", in: 1...1000)
            case "after":
                guard Names.isRecordID(value) else { throw ProtocolError.badRequest("after must be a record id from \"next\", not \"\(value)\"") }
                after = value
            case _ where name.hasPrefix("filter[") && name.hasSuffix("]"):
                let field = String(name.dropFirst("filter[".count).dropLast())
                guard Names.isField(field) else {
                    throw ProtocolError.badRequest("filter[\(field)]: a field name is 1-64 of A-Z a-z 0-9 _ -")
                }
                filters.append((field, value))
            default:
                continue  // Unknown parameters (cache busters and the like) are ignored.
            }
        }
        let page = try await node.store.listRecords(collection: collection, after: after, limit: limit, filters: filters)
        let body: JSONValue = [
            "items": .array(page.items.map(\.json)),
            "next": page.next.map(JSONValue.string) ?? .null,
            "epoch": .string(page.position.epoch),
            "offset": .int(page.position.offset),
        ]
        return .json(body)
    }

    func get(_ request: Request, context: Context) async throws -> Response {
        let (collection, id) = try Self.recordName(context)
        try checkRead(collection, context)
        guard let record = try await node.store.record(collection: collection, id: id) else {
            throw Self.noRecord(collection, id)
        }
        if let match = request.headers[.ifNoneMatch], ETag.matches(match, version: record.version) {
            return Response(status: .notModified, headers: [.eTag: ETag.of(record)])
        }
        return .json(record.json, headers: [.eTag: ETag.of(record)])
    }

    func create(_ request: Request, context: Context) async throws -> Response {
        let collection = try Self.collectionName(context)
        try checkWrite(collection, context)
        let data = try await request.jsonObjectBody(limit: limits.bodyBytes)
        let id = node.newRecordID()
        let result = try await node.writeRecord(collection: collection, id: id) { current in
            guard current == nil else { throw ProtocolError(.conflict, "record \"\(id)\" already exists") }
            return .put(data)
        }
        return .json(
            result.record.json,
            status: .created,
            headers: [.location: "/v1/collections/\(collection)/\(id)", .eTag: ETag.of(result.record)]
        )
    }

    func put(_ request: Request, context: Context) async throws -> Response {
        let (collection, id) = try Self.recordName(context)
        try checkWrite(collection, context)
        let data = try await request.jsonObjectBody(limit: limits.bodyBytes)
        let preconditions = Preconditions(request)
        let result = try await node.writeRecord(collection: collection, id: id) { current in
            try preconditions.check(current)
            return .put(data)
        }
        let created = result.action == .created
        var headers: HTTPFields = [.eTag: ETag.of(result.record)]
        if created { headers[.location] = "/v1/collections/\(collection)/\(id)" }
        return .json(result.record.json, status: created ? .created : .ok, headers: headers)
    }

    func patch(_ request: Request, context: Context) async throws -> Response {
        let (collection, id) = try Self.recordName(context)
        try checkWrite(collection, context)
        let patch = try await request.jsonBody(limit: limits.bodyBytes)
        guard case .object = patch else {
            throw ProtocolError.badRequest("a merge patch for a record must be a JSON object, not \(patch.typeName)")
        }
        let preconditions = Preconditions(request)
        let result = try await node.writeRecord(collection: collection, id: id) { current in
            guard let current else { throw Self.noRecord(collection, id) }
            try preconditions.check(current)
            guard case .object(let data) = MergePatch.apply(patch, to: .object(current.data)) else {
                throw ProtocolError.badRequest("the patch did not leave an object")
            }
            return .put(data)
        }
        return .json(result.record.json, headers: [.eTag: ETag.of(result.record)])
    }

    func delete(_ request: Request, context: Context) async throws -> Response {
        let (collection, id) = try Self.recordName(context)
        try checkWrite(collection, context)
        let preconditions = Preconditions(request)
        _ = try await node.writeRecord(collection: collection, id: id) { current in
            guard let current else { throw Self.noRecord(collection, id) }
            try preconditions.check(current)
            return .delete
        }
        return Response(status: .noContent)
    }

    // MARK: Permissions

    private func checkRead(_ collection: String, _ context: Context) throws {
        try node.access(context.identity).checkRead(collection: collection)
    }

    private func checkWrite(_ collection: String, _ context: Context) throws {
        try node.access(context.identity).checkWrite(collection: collection)
    }

    // MARK: Names

    static func collectionName(_ context: Context) throws -> String {
        let name = context.parameters.decoded("collection")
        guard Names.isCollection(name) else {
            throw ProtocolError.badRequest("bad collection name \"\(name.prefix(80))\": use 1-64 of A-Z a-z 0-9 _ -")
        }
        return name
    }

    static func recordName(_ context: Context) throws -> (String, String) {
        let collection = try collectionName(context)
        let id = context.parameters.decoded("id")
        guard Names.isRecordID(id) else {
            throw ProtocolError.badRequest("bad record id \"\(id.prefix(80))\": use 1-200 of A-Z a-z 0-9 _ . @ ~ -")
        }
        return (collection, id)
    }

    static func noRecord(_ collection: String, _ id: String) -> ProtocolError {
        .notFound("no record \"\(id)\" in collection \"\(collection)\"")
    }
}

/// `ETag: "VERSION"` and the `If-Match` / `If-None-Match` lists that compare against it.
enum ETag {
    static func of(_ record: Record) -> String { "\"\(record.version)\"" }

    /// True if the header (`*`, or a list of tags, weak or strong) names `version`.
    static func matches(_ header: String, version: Int64) -> Bool {
        header.split(separator: ",").contains { raw in
            var tag = raw.trimmingCharacters(in: .whitespaces)
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag.removeFirst(2) }
            if tag.hasPrefix("\"") && tag.hasSuffix("\"") && tag.count >= 2 { tag = String(tag.dropFirst().dropLast()) }
            return tag == String(version)
        }
    }
}

/// `If-Match` and `If-None-Match` of a write, checked inside the store's transaction.
struct Preconditions: Sendable {
    let ifMatch: String?
    let ifNoneMatch: String?

    init(_ request: Request) {
        ifMatch = request.headers[.ifMatch]
        ifNoneMatch = request.headers[.ifNoneMatch]
    }

    func check(_ current: Record?) throws {
        if let ifMatch {
            guard let current else {
                throw ProtocolError(.preconditionFailed, "If-Match: \(ifMatch) but the record does not exist; nothing changed")
            }
            guard ETag.matches(ifMatch, version: current.version) else {
                throw ProtocolError(
                    .preconditionFailed,
                    "If-Match: \(ifMatch) but the record is at version \(current.version); nothing changed"
                )
            }
        }
        if let ifNoneMatch, let current, ETag.matches(ifNoneMatch, version: current.version) {
            throw ProtocolError(.preconditionFailed, "If-None-Match: \(ifNoneMatch) but the record exists at version \(current.version); nothing changed")
        }
    }
}
