import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// A path that exists asked with a method it does not serve: 405 with `Allow` (RFC 9110
/// section 15.5.6) instead of the router's 404. What each path serves is read from the
/// router's own routes once they are all registered (`routesRegistered`), so this never
/// disagrees with them. The web pages' files (`Public/`) are served with GET and HEAD.
/// `/socket.io/` is left out: it answers in Engine.IO's terms.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Filled after the routes are registered; the middleware must be added before them.
    final class Table: Sendable {
        fileprivate let routes = Mutex<[(path: [Substring], methods: [HTTPRequest.Method])]>([])

        func routesRegistered(_ descriptions: [Router<Context>.RouteDescription]) {
            var table: [(path: [Substring], methods: [HTTPRequest.Method])] = []
            for route in descriptions {
                let path = "\(route.path)".split(separator: "/")
                if path.first == "socket.io" { continue }
                if let index = table.firstIndex(where: { $0.path == path }) {
                    table[index].methods.append(route.method)
                } else {
                    table.append((path, [route.method]))
                }
            }
            let order: [HTTPRequest.Method] = [.get, .head, .post, .put, .patch, .delete, .options]
            for index in table.indices {
                table[index].methods.sort { (order.firstIndex(of: $0) ?? order.count) < (order.firstIndex(of: $1) ?? order.count) }
            }
            routes.withLock { $0 = table }
        }

        /// The methods a request path is served with, or nil when no route has that path.
        func methods(for path: String) -> [HTTPRequest.Method]? {
            let parts = path.split(separator: "/")
            return routes.withLock { table in
                table.first { Self.matches($0.path, parts) }?.methods
            }
        }

        private static func matches(_ pattern: [Substring], _ parts: [Substring]) -> Bool {
            guard pattern.count == parts.count else { return false }
            // Parameters print as `{name}` (or `:name`) and match any one segment.
            return zip(pattern, parts).allSatisfy { $0.hasPrefix("{") || $0.hasPrefix(":") || $0 == "*" || $0 == $1 }
        }
    }

    let table: Table
    /// The web pages' directory, whose files `FileMiddleware` serves.
    let files: String?

    /// A file (or a directory with an `index.html`) under `files`.
    private func isFile(_ path: String) -> Bool {
        guard let files, !path.contains("..") else { return false }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: files + path, isDirectory: &isDirectory) else { return false }
        return !isDirectory.boolValue || FileManager.default.fileExists(atPath: files + path + "/index.html")
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && error.body == nil {
            let path = request.uri.path
            guard let methods = table.methods(for: path) ?? (isFile(path) ? [.get, .head] : nil), !methods.contains(request.method) else {
                throw error
            }
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            throw HTTPError(.methodNotAllowed, headers: [.allow: allow], message: "\(request.method) is not allowed on \(path); use \(allow)")
        }
    }
}
