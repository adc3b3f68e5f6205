import HTTPTypes
import Hummingbird

extension Router {
    /// The methods `path` does not serve answer 405 with `Allow` (RFC 9110 section 15.5.6)
    /// instead of 404: the resource exists. Where HEAD is not listed, it is refused too
    /// (streams and long-polls, whose GET has effects), not generated from GET.
    func refuseOtherMethods(on path: RouterPath, allowing allowed: [HTTPRequest.Method]) {
        let allow = allowed.map(\.rawValue).joined(separator: ", ")
        for method in [HTTPRequest.Method.get, .head, .post, .put, .patch, .delete] where !allowed.contains(method) {
            on(path, method: method) { request, _ -> Response in
                throw HTTPError(.methodNotAllowed, headers: [.allow: allow], message: "\(request.method) is not allowed on \(request.uri.path); use \(allow)")
            }
        }
    }
}
