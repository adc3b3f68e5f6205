import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A record of a live collection, its data decoded.
public struct CollectionItem<T: Sendable>: Sendable {
    public var id: String
    public var version: Int64
    public var value: T
}

extension CollectionItem: Equatable where T: Equatable {}

/// A collection kept up to date (SPEC section 2): its records read over REST with the
/// offset of their change feed in the same snapshot, then the feed from that offset, so
/// that no change is missed or applied twice. A `reset` (the feed could not resume)
/// reloads the records.
public struct LiveCollection<T: Decodable & Sendable>: Sendable {
    public let name: String
    let client: SwitchboardClient

    /// The records in id order: all of them first, then again after every change.
    public func live() -> AsyncThrowingStream<[CollectionItem<T>], any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [CollectionItem<T>].self)
        let task = Task {
            do {
                try await follow(continuation)
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func follow(_ continuation: AsyncThrowingStream<[CollectionItem<T>], any Error>.Continuation) async throws {
        let channel = Names.collectionChannel(name)
        while !Task.isCancelled {
            let (records, position) = try await snapshot()
            var items = records
            continuation.yield(Self.sorted(items))
            let subscription = try await client.subscribe(channel, since: position)
            defer { subscription.cancel() }
            var reset = false
            for try await event in subscription {
                switch event {
                case .message(let message):
                    try apply(message.data, to: &items)
                    continuation.yield(Self.sorted(items))
                case .reset:
                    reset = true
                case .join, .leave:
                    continue
                }
                if reset { break }
            }
            if !reset { return }
            // The feed could not resume: read the records again and follow from there.
            await subscription.handle.unsubscribe()
        }
    }

    /// `{"action","record"}`: a record created, updated or deleted.
    private func apply(_ change: JSONValue, to items: inout [String: CollectionItem<T>]) throws {
        guard let record = change["record"], let id = record["id"]?.stringValue else { return }
        if change["action"]?.stringValue == "deleted" {
            items.removeValue(forKey: id)
        } else {
            items[id] = try Self.item(record)
        }
    }

    /// Every record, page by page, and the feed's position of the first page's snapshot.
    private func snapshot() async throws -> ([String: CollectionItem<T>], Position) {
        var items: [String: CollectionItem<T>] = [:]
        var after: String?
        var position: Position?
        repeat {
            var path = "/v1/collections/\(name)?limit=1000"
            if let after { path += "&after=\(after)" }
            let page = try await client.rest(path)
            if position == nil { position = Position(json: page) }
            for record in page["items"]?.arrayValue ?? [] {
                let item = try Self.item(record)
                items[item.id] = item
            }
            after = page["next"]?.stringValue
        } while after != nil
        guard let position else { throw SwitchboardClientError.http(status: 200, body: "no position in the collection page") }
        return (items, position)
    }

    private static func item(_ record: JSONValue) throws -> CollectionItem<T> {
        guard let id = record["id"]?.stringValue, let version = record["version"]?.intValue, let data = record["data"] else {
            throw SwitchboardClientError.http(status: 200, body: "a record without id, version or data")
        }
        let value = try JSONDecoder().decode(T.self, from: Data(data.serialized.utf8))
        return CollectionItem(id: id, version: version, value: value)
    }

    private static func sorted(_ items: [String: CollectionItem<T>]) -> [CollectionItem<T>] {
        items.values.sorted { $0.id < $1.id }
    }
}

extension SwitchboardClient {
    /// A REST GET (with the client's token), as JSON.
    func rest(_ path: String) async throws -> JSONValue {
        let base = engine.restBase
        guard let url = URL(string: base + path) else { throw SwitchboardClientError.http(status: 0, body: "bad URL \(base + path)") }
        var request = URLRequest(url: url)
        if let token = try await engine.token() { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200 else { throw SwitchboardClientError.http(status: status, body: String(decoding: data, as: UTF8.self)) }
        return try JSONValue.parse(Array(data))
    }
}
