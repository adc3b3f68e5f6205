/// What a write does to one record, decided from its current state inside the store's
/// transaction (so preconditions and merge patches see exactly what they change).
public enum RecordChange: Sendable {
    case put([String: JSONValue])
    case delete
}

public enum RecordAction: String, Sendable {
    case created, updated, deleted
}

extension RecordChange {
    /// The record this change leaves (for a delete, the one removed) and what it did, from
    /// the record as it is now. Deleting a missing record is `not_found`.
    public func apply(to current: Record?, collection: String, id: String, now: String) throws(ProtocolError) -> (record: Record, action: RecordAction) {
        switch self {
        case .put(let data):
            guard let current else {
                return (Record(id: id, version: 1, createdAt: now, updatedAt: now, data: data), .created)
            }
            return (Record(id: id, version: current.version + 1, createdAt: current.createdAt, updatedAt: now, data: data), .updated)
        case .delete:
            guard let current else { throw .notFound("no record \"\(id)\" in collection \"\(collection)\"") }
            return (current, .deleted)
        }
    }
}

/// The outcome of a committed record write.
public struct RecordWriteResult: Sendable {
    public var record: Record
    public var action: RecordAction
    public var event: ChannelMessage

    public init(record: Record, action: RecordAction, event: ChannelMessage) {
        self.record = record
        self.action = action
        self.event = event
    }

    /// `{"action": …, "record": …}`; a deleted record is its `id` and last `version`.
    public static func eventData(action: RecordAction, record: Record) -> JSONValue {
        let recordJSON: JSONValue = action == .deleted
            ? ["id": .string(record.id), "version": .int(record.version)]
            : record.json
        return ["action": .string(action.rawValue), "record": recordJSON]
    }
}

/// A page of records plus the snapshot position of `collection:C` read in the same transaction.
public struct RecordPage: Sendable {
    public var items: [Record]
    public var next: String?
    public var position: Position

    public init(items: [Record], next: String?, position: Position) {
        self.items = items
        self.next = next
        self.position = position
    }
}

/// RFC 7386 JSON Merge Patch.
public enum MergePatch {
    public static func apply(_ patch: JSONValue, to target: JSONValue) -> JSONValue {
        guard case .object(let patchObject) = patch else { return patch }
        var result = target.objectValue ?? [:]
        for (key, value) in patchObject {
            if value == .null {
                result.removeValue(forKey: key)
            } else {
                result[key] = apply(value, to: result[key] ?? .null)
            }
        }
        return .object(result)
    }
}
