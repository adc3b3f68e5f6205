import Hummingbird
import SwitchboardCore

/// Liveness, readiness, the index, and a clear answer for `/v1/ws` without an upgrade.
struct SystemRoutes {
    typealias Context = SwitchboardRequestContext
    let node: Node

    func register(on router: Router<Context>) {
        router.get("healthz") { _, _ in Response.json(["status": "ok"]) }
        router.get("readyz") { _, _ in
            do {
                try await node.store.ping()
                return Response.json(["status": "ready"])
            } catch {
                throw ProtocolError(.unavailable, "the database is not reachable")
            }
        }
        router.get("metrics") { _, context -> Response in
            try node.access(context.identity).checkAdminister("reading metrics")
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: node.metrics.render(node: node)))
            )
        }
        router.get("v1/ws") { _, _ -> Response in
            throw ProtocolError(.upgradeRequired, "/v1/ws is a WebSocket endpoint: send a WebSocket upgrade request")
        }
        router.get("v1") { _, _ in
            Response.json([
                "name": "switchboard",
                "version": .string(SwitchboardVersion.current),
                "links": [
                    "collections": "/v1/collections/{collection}",
                    "channels": "/v1/channels",
                    "websocket": "/v1/ws",
                    "health": "/healthz",
                    "sse": "/v1/sse?channels={channels}",
                    "poll": "/v1/poll?channel={channel}&since={epoch}:{offset}",
                    "openapi": "/openapi.json",
                ],
            ])
        }
    }
}

public enum SwitchboardVersion {
    public static let current = "0.1.0"
}
