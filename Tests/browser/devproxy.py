"""A same-origin stand-in for a server that does not serve Public/ yet.

Serves files from a folder and passes everything else (REST, SSE, WebSocket upgrades) to
the Switchboard server, with the browser's own Host header, so the server's same-origin
check sees the origin the page came from. Only for development and for the browser tests:
when SWITCHBOARD_BROWSER_PROXY=1 (the real server serves Public/ itself), and with
block_websocket=True as a proxy that does not pass WebSockets, for the SSE fallback.

    python3 Tests/browser/devproxy.py --port 8081 --backend 8080 --root Sources/SwitchboardServer/Public
"""

from __future__ import annotations

import argparse
import http.client
import mimetypes
import os
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

API_PREFIXES = ("/v1/", "/healthz", "/readyz", "/metrics", "/openapi.json")
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def make_handler(root: str, backend_port: int, block_websocket: bool = False):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _api(self) -> bool:
            path = urlsplit(self.path).path
            if path.startswith(API_PREFIXES):
                return not (path == "/openapi.json" and os.path.exists(os.path.join(root, "openapi.json")))
            return False

        def do_GET(self):
            self._dispatch()

        def do_HEAD(self):
            self._dispatch()

        def do_POST(self):
            self._dispatch()

        def do_PUT(self):
            self._dispatch()

        def do_PATCH(self):
            self._dispatch()

        def do_DELETE(self):
            self._dispatch()

        def do_OPTIONS(self):
            self._dispatch()

        def _dispatch(self):
            if self._api():
                if self.headers.get("Upgrade", "").lower() == "websocket":
                    if block_websocket:  # like a proxy that does not pass WebSockets
                        self.close_connection = True
                        return self._plain(403, b"WebSockets are not allowed here")
                    self._tunnel()
                else:
                    self._forward()
            else:
                self._static()

        # Static files ------------------------------------------------------------
        def _static(self):
            path = urlsplit(self.path).path
            rel = os.path.normpath(path.lstrip("/"))
            if rel.startswith(".."):
                return self._plain(404, b"not found")
            full = os.path.join(root, rel)
            if os.path.isdir(full):
                if not path.endswith("/"):
                    self.send_response(301)
                    self.send_header("Location", path + "/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                full = os.path.join(full, "index.html")
            if not os.path.isfile(full):
                return self._plain(404, b"not found")
            with open(full, "rb") as f:
                body = f.read()
            ctype = mimetypes.guess_type(full)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype.endswith("javascript"):
                ctype += "; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _plain(self, status: int, body: bytes):
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        # REST and SSE ------------------------------------------------------------
        def _forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            try:
                conn = http.client.HTTPConnection("127.0.0.1", backend_port, timeout=90)
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP and name.lower() != "content-length":
                        conn.putheader(name, value)
                if body is not None:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
            except OSError:
                # The server is down: drop the connection, as a refused connection would.
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            streaming = resp.getheader("Content-Type", "").startswith("text/event-stream")
            self.send_response(resp.status, resp.reason)
            for name, value in resp.getheaders():
                if name.lower() not in HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            if streaming:
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    while True:
                        chunk = resp.read1(65536)
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass
                conn.close()
                return
            data = resp.read()
            conn.close()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        # WebSocket ---------------------------------------------------------------
        def _tunnel(self):
            self.close_connection = True
            try:
                upstream = socket.create_connection(("127.0.0.1", backend_port), timeout=5)
            except OSError:
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            upstream.settimeout(None)
            head = f"{self.command} {self.path} HTTP/1.1\r\n"
            for name, value in self.headers.items():
                head += f"{name}: {value}\r\n"
            upstream.sendall((head + "\r\n").encode("latin-1"))
            client = self.connection
            client.settimeout(None)
            sockets = [client, upstream]
            try:
                while True:
                    readable, _, _ = select.select(sockets, [], [], 60)
                    if not readable:
                        continue
                    for s in readable:
                        data = s.recv(65536)
                        if not data:
                            return
                        (upstream if s is client else client).sendall(data)
            except OSError:
                pass
            finally:
                for s in sockets:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                upstream.close()

    return Handler


class DevProxy:
    def __init__(self, root: str, backend_port: int, port: int = 0, block_websocket: bool = False):
        self.server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(root, backend_port, block_websocket))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "DevProxy":
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--backend", type=int, default=8080)
    parser.add_argument("--block-websocket", action="store_true", help="refuse WebSocket upgrades (to try the SSE fallback)")
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "../../Sources/SwitchboardServer/Public"))
    args = parser.parse_args()
    proxy = DevProxy(os.path.abspath(args.root), args.backend, args.port, args.block_websocket)
    print(f"serving {args.root} on http://127.0.0.1:{proxy.port}, API → 127.0.0.1:{args.backend}", flush=True)
    proxy.server.serve_forever()
