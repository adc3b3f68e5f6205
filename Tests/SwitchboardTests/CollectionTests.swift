import Foundation
import Testing
import SwitchboardCore

@Suite("REST collections")
struct CollectionTests {
    @Test("create, read, replace, merge-patch and delete a record, with versions and ETags")
    func crudRoundTrip() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let created = try await http.put("/v1/collections/stocks/AAPL", #"{"price": 189.5, "name": "Apple", "tags": {"a": 1}}"#)
                #expect(created.status == 201)
                #expect(created.json["version"] == 1)
                #expect(created.json["id"] == "AAPL")
                #expect(created.header("ETag") == "\"1\"")
                let createdAt = try #require(created.json["created_at"]?.stringValue)
                #expect(createdAt.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression) != nil)

                let read = try await http.get("/v1/collections/stocks/AAPL")
                #expect(read.status == 200)
                #expect(read.header("ETag") == "\"1\"")
                #expect(read.json["data"] == ["price": 189.5, "name": "Apple", "tags": ["a": 1]])

                let replaced = try await http.put("/v1/collections/stocks/AAPL", #"{"price": 190}"#)
                #expect(replaced.status == 200)
                #expect(replaced.json["version"] == 2)
                #expect(replaced.json["data"] == ["price": 190])
                #expect(replaced.json["created_at"]?.stringValue == createdAt)

                // Merge patch: null deletes a key, nested objects merge.
                try await http.put("/v1/collections/stocks/AAPL", #"{"price": 1, "name": "Apple", "tags": {"a": 1, "b": 2}}"#)
                let patched = try await http.patch("/v1/collections/stocks/AAPL", #"{"name": null, "tags": {"a": null, "c": 3}, "price": 2}"#)
                #expect(patched.status == 200)
                #expect(patched.json["version"] == 4)
                #expect(patched.json["data"] == ["price": 2, "tags": ["b": 2, "c": 3]])

                let deleted = try await http.delete("/v1/collections/stocks/AAPL")
                #expect(deleted.status == 204)
                #expect(try await http.get("/v1/collections/stocks/AAPL").status == 404)
                #expect(try await http.delete("/v1/collections/stocks/AAPL").status == 404)
                #expect(try await http.patch("/v1/collections/stocks/AAPL", "{}").status == 404)
            }
        }
    }

    @Test("POST makes ids that sort in creation order, with Location")
    func postCreatesOrderedIDs() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                var ids: [String] = []
                for i in 0..<20 {
                    let response = try await http.post("/v1/collections/notes", #"{"n": \#(i)}"#)
                    #expect(response.status == 201)
                    let id = try #require(response.json["id"]?.stringValue)
                    #expect(response.header("Location") == "/v1/collections/notes/\(id)")
                    ids.append(id)
                }
                #expect(ids == ids.sorted())
                let list = try await http.get("/v1/collections/notes?limit=100")
                #expect(list.json["items"]?.arrayIDs == ids)
            }
        }
    }

    @Test("If-Match: a stale version is 412 and changes nothing; the current one writes")
    func ifMatch() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                try await http.put("/v1/collections/docs/d1", #"{"v": 1}"#)
                try await http.put("/v1/collections/docs/d1", #"{"v": 2}"#)
                let stale = try await http.put("/v1/collections/docs/d1", #"{"v": 99}"#, headers: ["If-Match": "\"1\""])
                #expect(stale.status == 412)
                #expect(stale.header("Content-Type") == "application/problem+json")
                let stalePatch = try await http.patch("/v1/collections/docs/d1", #"{"v": 99}"#, headers: ["If-Match": "\"1\""])
                #expect(stalePatch.status == 412)
                let staleDelete = try await http.delete("/v1/collections/docs/d1", headers: ["If-Match": "\"1\""])
                #expect(staleDelete.status == 412)
                let unchanged = try await http.get("/v1/collections/docs/d1")
                #expect(unchanged.json["version"] == 2)
                #expect(unchanged.json["data"] == ["v": 2])
                // Nothing was published either: the change feed has two events.
                let feed = try await http.get("/v1/channels/collection:docs/messages")
                #expect(feed.json["offset"] == 2)

                let fresh = try await http.put("/v1/collections/docs/d1", #"{"v": 3}"#, headers: ["If-Match": "\"2\""])
                #expect(fresh.status == 200)
                #expect(fresh.json["version"] == 3)
                let notModified = try await http.get("/v1/collections/docs/d1", headers: ["If-None-Match": "\"3\""])
                #expect(notModified.status == 304)
                let createOnly = try await http.put("/v1/collections/docs/d1", "{}", headers: ["If-None-Match": "*"])
                #expect(createOnly.status == 412)
                let missing = try await http.put("/v1/collections/docs/nope", "{}", headers: ["If-Match": "\"1\""])
                #expect(missing.status == 412)
                #expect(try await http.get("/v1/collections/docs/nope").status == 404)
            }
        }
    }

    @Test("pagination walks every record once in id order; filters match top-level fields")
    func paginationAndFilter() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let symbols = ["AAPL", "AMZN", "GOOG", "MSFT", "NVDA", "TSLA", "META"]
                for (i, symbol) in symbols.enumerated() {
                    try await http.put(
                        "/v1/collections/stocks/\(symbol)",
                        #"{"exchange": "\#(i % 2 == 0 ? "NASDAQ" : "NYSE")", "rank": \#(i), "active": \#(i < 5)}"#
                    )
                }
                var seen: [String] = []
                var cursor: String?
                var pages = 0
                repeat {
                    let path = "/v1/collections/stocks?limit=3" + (cursor.map { "&after=\($0)" } ?? "")
                    let page = try await http.get(path)
                    #expect(page.status == 200)
                    #expect(page.json["offset"] == 7)
                    #expect(page.json["epoch"]?.stringValue?.isEmpty == false)
                    seen += page.json["items"]?.arrayIDs ?? []
                    cursor = page.json["next"]?.stringValue
                    pages += 1
                } while cursor != nil && pages < 10
                #expect(seen == symbols.sorted())
                #expect(pages == 3)

                let nasdaq = try await http.get("/v1/collections/stocks?filter[exchange]=NASDAQ")
                #expect(nasdaq.json["items"]?.arrayIDs == ["AAPL", "GOOG", "NVDA", "META"].sorted())
                let encoded = try await http.get("/v1/collections/stocks?filter%5Brank%5D=3")
                #expect(encoded.json["items"]?.arrayIDs == ["MSFT"])
                let both = try await http.get("/v1/collections/stocks?filter[exchange]=NASDAQ&filter[active]=false")
                #expect(both.json["items"]?.arrayIDs == ["META"])
                let none = try await http.get("/v1/collections/stocks?filter[exchange]=LSE")
                #expect(none.json["items"]?.arrayIDs == [])
                #expect(none.json["next"] == .null)
            }
        }
    }

    @Test("every write commits its change event on collection:C with consecutive offsets")
    func changeEvents() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                try await http.put("/v1/collections/stocks/AAPL", #"{"price": 1}"#)
                try await http.patch("/v1/collections/stocks/AAPL", #"{"price": 2}"#)
                try await http.delete("/v1/collections/stocks/AAPL")
                let feed = try await http.get("/v1/channels/collection:stocks/messages")
                let messages = try #require(feed.json["messages"].flatMap { if case .array(let a) = $0 { a } else { nil } })
                #expect(messages.map { $0["offset"] } == [1, 2, 3])
                #expect(messages.map { $0["data"]?["action"] } == ["created", "updated", "deleted"])
                #expect(messages[1]["data"]?["record"]?["data"] == ["price": 2])
                #expect(messages[2]["data"]?["record"] == ["id": "AAPL", "version": 2])
                #expect(messages.allSatisfy { $0["channel"] == "collection:stocks" && $0["type"] == "message" })
            }
        }
    }
}

extension JSONValue {
    /// The `id` of each item of an array of records.
    var arrayIDs: [String]? {
        guard case .array(let items) = self else { return nil }
        return items.compactMap { $0["id"]?.stringValue }
    }
}
