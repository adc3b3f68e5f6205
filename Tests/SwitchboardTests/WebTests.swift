import Foundation
import Testing
import SwitchboardCore
import SwitchboardServer

/// The web side the server itself provides: static pages, the OpenAPI document, sys:stats.
@Suite("Web")
struct WebTests {
    @Test("every route the server registers is in /openapi.json, with its method")
    func openAPICoversRoutes() async throws {
        try await TestServer.with { server in
            let response = try await HTTP.with(server) { http in try await http.get("/openapi.json") }
            #expect(response.status == 200)
            let paths = try #require(response.json["paths"]?.objectValue)
            var config = ServerConfiguration()
            config.database = "sqlite:\(TestServer.temporaryDatabase())"
            let routes = try await SwitchboardServer(configuration: config, logger: .init(label: "t")).makeRouter().routes
            #expect(routes.count >= 15)
            for route in routes {
                let path = "\(route.path)".hasPrefix("/") ? "\(route.path)" : "/\(route.path)"
                let operation = paths[path]?[route.method.rawValue.lowercased()]
                #expect(operation != nil, "\(route.method) \(path) is not in openapi.json")
            }
        }
    }

    @Test("the browser client and the pages are served")
    func staticFiles() async throws {
        try await TestServer.with { server in
            try await HTTP.with(server) { http in
                let script = try await http.get("/switchboard.js")
                #expect(script.status == 200)
                #expect(script.header("Content-Type")?.contains("javascript") == true)
                #expect(script.text.contains("Switchboard"))
                for page in ["/", "/demo/chat.html", "/demo/stocks.html", "/admin/"] {
                    let response = try await http.get(page)
                    #expect(response.status == 200, "\(page)")
                    #expect(response.text.lowercased().contains("<html"), "\(page)")
                }
            }
        }
    }

    @Test("sys:stats carries connections and message rates once a second, for the API key only")
    func systemStats() async throws {
        try await TestServer.with(configure: SecurityTests.secured) { server in
            let admin = try await WSClient.connect(server, headers: SecurityTests.key)
            _ = try await admin.command("subscribe", ["channel": "sys:stats"])
            try await HTTP.with(server) { http in
                for i in 0..<5 {
                    let response = try await http.post("/v1/channels/public:x/messages", #"{"data": \#(i)}"#, headers: SecurityTests.key)
                    #expect(response.status == 201)
                }
            }
            var stats: [JSONValue] = []
            while stats.count < 2 { stats += try await admin.messages(1, channel: "sys:stats", timeout: .seconds(5)).compactMap { $0["data"] } }
            #expect(stats.allSatisfy { ($0["connections"]?.intValue ?? 0) >= 1 })
            #expect(stats.allSatisfy { ($0["websocket"]?.intValue ?? 0) >= 1 })
            #expect(stats.allSatisfy { $0["subscriptions"]?.intValue != nil && $0["messages_out"]?.intValue != nil })
            #expect(stats.reduce(0) { $0 + ($1["messages_in"]?.intValue ?? 0) } >= 5)
            #expect(stats.allSatisfy { $0["time"]?.stringValue?.hasSuffix("Z") == true })
            _ = await admin.close()
            let anonymous = try await WSClient.connect(server)
            #expect(try await anonymous.command("subscribe", ["channel": "sys:stats"])["error"]?["code"] == "unauthorized")
            _ = await anonymous.close()
        }
    }
}
