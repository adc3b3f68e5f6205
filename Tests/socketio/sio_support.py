"""Helpers of the Socket.IO tests (imported by conftest.py and the test modules; a module
name of its own, so that running Tests/browser and Tests/socketio together does not mix up
their conftest modules):

- `Server`: the switchboard binary with a config file, restartable, with REST helpers
  (`publish`, `history`, `rest`); the process itself is `SwitchboardProcess` of
  Tests/pysupport/switchboard_server.py, shared with Tests/browser. SWITCHBOARD_BIN overrides
  the binary (default .build/debug/switchboard); a start waits for a binary being rebuilt and retries.
- `EngineIO`, `RawWS`, `Pending`: raw Engine.IO v4 over HTTP (requests) and WebSocket
  (websocket-client).
- `SwitchboardWS`: a /v1/ws client. `Recorder`: the events a python-socketio client got.
- `mint`: HS256 tokens (PyJWT); `unique`: channel names no other test uses.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from pathlib import Path

import jwt
import requests
import websocket

# The server process is shared with Tests/browser: Tests/pysupport/switchboard_server.py.
_PYSUPPORT = str(Path(__file__).resolve().parents[1] / "pysupport")
if _PYSUPPORT not in sys.path:
    sys.path.insert(0, _PYSUPPORT)

from switchboard_server import REPO, SwitchboardProcess, free_port  # noqa: E402,F401

API_KEY = "socketio-tests-key-0123456789abcdef"
JWT_SECRET = "socketio-tests-hs256-secret-0123456789abcdef"  # HS256 needs at least 32 bytes

LIMITS = {
    "message_bytes": 65536,
    "connections_per_ip": 1000,
    "handshakes_per_second": 100,
    "commands_per_second": 100,
    "command_burst": 200,
}

SECURED_CONFIG = {
    "heartbeat_seconds": 1,
    "socketio": {"channels": ["data_updated"], "recovery": False},
    "limits": LIMITS,
    "namespaces": {
        "": {"anonymous": True, "client_publish": False, "history_size": 100},
        "chat": {"anonymous": True, "client_publish": True, "presence": True, "history_size": 200},
        "private": {"anonymous": False, "client_publish": False, "history_size": 100},
    },
}

SUITE_CONFIG = {
    "heartbeat_seconds": 1,
    "socketio": {"channels": [], "recovery": False},
    "limits": dict(LIMITS, message_bytes=1000000),
    "namespaces": {
        "": {"anonymous": True, "client_publish": False, "history_size": 100},
        "chat": {"anonymous": True, "client_publish": True, "presence": True, "history_size": 200},
    },
}


def unique(prefix: str) -> str:
    """A channel name no other test uses (the servers live for the whole session)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def mint(sub: str = "alice", secret: str = JWT_SECRET, ttl: int = 3600, **claims) -> str:
    """An HS256 JWT for the secured server."""
    now = int(time.time())
    payload = {"sub": sub, "iat": now, "exp": now + ttl}
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm="HS256")


class Server(SwitchboardProcess):
    """The switchboard binary with a config file, an SQLite file and a fixed port."""

    def __init__(self, workdir: Path, config: dict, api_key: str | None = None, jwt_secret: str | None = None):
        super().__init__(workdir, database="db.sqlite", api_key=api_key,
                         env={"SWITCHBOARD_JWT_SECRET": jwt_secret} if jwt_secret else None)
        self.config = config
        self.jwt_secret = jwt_secret
        self.config_path = workdir / "config.yaml"

    @property
    def url(self) -> str:
        return self.api_url

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        # JSON is YAML: the file is written as JSON under the name the brief uses.
        self.config_path.write_text(json.dumps(self.config, indent=1))
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            try:
                self.launch(deadline, ready_timeout=30)
                return
            except RuntimeError as e:
                last_error = str(e)
                self.stop()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"could not start the server: {last_error}") from None
                # The binary may have been replaced mid-start (another build): wait and retry.
                time.sleep(1)
                self.port = free_port()

    # REST

    def rest(self, method: str, path: str, body=None, key: bool = True, headers: dict | None = None, params=None):
        """(status, JSON or None) of a REST call, with the API key (when there is one) unless key=False."""
        h = dict(headers or {})
        if key and self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        r = requests.request(method, self.url + path, json=body, headers=h, params=params, timeout=10)
        try:
            return r.status_code, r.json() if r.content else None
        except ValueError:
            return r.status_code, r.text

    def publish(self, channel: str, data) -> dict:
        """POST /v1/channels/{channel}/messages: {"channel","epoch","offset"}."""
        status, body = self.rest("POST", f"/v1/channels/{channel}/messages", {"data": data})
        assert status == 201, (status, body)
        return body

    def history(self, channel: str, since: str | None = None, limit: int | None = None) -> dict:
        params = {}
        if since is not None:
            params["since"] = since
        if limit is not None:
            params["limit"] = limit
        status, body = self.rest("GET", f"/v1/channels/{channel}/messages", params=params)
        assert status == 200, (status, body)
        return body


def run_server(tmp_path_factory, name: str, config: dict, **kwargs):
    """A server for a fixture: started in a fresh directory, stopped after the session."""
    srv = Server(tmp_path_factory.mktemp(name), config, **kwargs)
    srv.start()
    yield srv
    srv.stop()


# ---------------------------------------------------------------------------------------
# Raw Engine.IO over HTTP (requests) and WebSocket (websocket-client)

RS = "\x1e"


class Closed(Exception):
    """The WebSocket was closed (close frame or lost connection)."""


class RawWS:
    """One WebSocket to /socket.io/: frames as str (text) or bytes (binary)."""

    def __init__(self, url: str, header: list[str] | None = None, timeout: float = 5):
        self.url = url
        self.ws = websocket.create_connection(url, timeout=timeout, header=header or [], enable_multithread=True)
        self.close_code: int | None = None

    def send(self, text: str) -> None:
        self.ws.send(text)

    def send_binary(self, data: bytes) -> None:
        self.ws.send_binary(data)

    def recv(self, timeout: float = 3):
        """The next data frame (str or bytes); Closed when the connection ends, TimeoutError
        when nothing comes within `timeout`."""
        self.ws.settimeout(timeout)
        try:
            opcode, data = self.ws.recv_data()
        except websocket.WebSocketTimeoutException:
            raise TimeoutError(f"no frame within {timeout} s") from None
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError) as e:
            raise Closed(str(e)) from None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            raise Closed(f"close frame {self.close_code}")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return data.decode()
        return bytes(data)

    def recv_skip_pings(self, timeout: float = 3, pong: bool = True):
        """The next frame that is not an Engine.IO ping `2` (answered with `3` when `pong`)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no frame but pings within {timeout} s")
            frame = self.recv(left)
            if frame == "2":
                if pong:
                    self.send("3")
                continue
            return frame

    def open_packet(self) -> dict:
        frame = self.recv()
        assert isinstance(frame, str) and frame.startswith("0"), frame
        return json.loads(frame[1:])

    def expect_closed(self, within: float = 1.0, pong: bool = True) -> list:
        """Asserts the server closes the connection within `within` seconds, answering pings
        meanwhile (so that no ping timeout can be what closes it); the frames that came first."""
        frames = []
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the server did not close the WebSocket within {within} s; frames: {frames!r}")
            try:
                frame = self.recv(left)
            except Closed:
                return frames
            except TimeoutError:
                continue
            if frame == "2" and pong:
                try:
                    self.send("3")
                except Exception:  # noqa: BLE001  closed meanwhile
                    return frames
            frames.append(frame)

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:  # noqa: BLE001
            pass


class EngineIO:
    """Raw Engine.IO v4 requests to a server's /socket.io/."""

    def __init__(self, srv: Server, path: str = "/socket.io/"):
        self.srv = srv
        self.url = srv.url + path
        self.ws_base = srv.ws_url + path
        self.sockets: list[RawWS] = []
        self.http = requests.Session()

    def params(self, sid: str | None = None, transport: str = "polling", **extra) -> dict:
        p = {"EIO": "4", "transport": transport}
        if sid:
            p["sid"] = sid
        p.update(extra)
        return p

    def handshake(self, **extra) -> tuple[str, dict]:
        r = requests.get(self.url, params=self.params(**extra), timeout=5)
        assert r.status_code == 200, (r.status_code, r.text)
        assert r.text.startswith("0"), r.text
        open_packet = json.loads(r.text[1:])
        return open_packet["sid"], open_packet

    def get(self, sid: str, timeout: float = 5, **extra) -> requests.Response:
        return requests.get(self.url, params=self.params(sid, **extra), timeout=timeout)

    def post(self, sid: str, body, headers: dict | None = None, timeout: float = 5, **extra) -> requests.Response:
        h = {"Content-Type": "text/plain;charset=UTF-8"}
        h.update(headers or {})
        data = body.encode() if isinstance(body, str) else body
        return requests.post(self.url, params=self.params(sid, **extra), data=data, headers=h, timeout=timeout)

    def get_async(self, sid: str, **extra) -> "Pending":
        """A GET in a thread (a long-poll that waits)."""
        return Pending(lambda: self.get(sid, **extra))

    def ws(self, sid: str | None = None, query: str | None = None, header: list[str] | None = None) -> RawWS:
        if query is None:
            query = "EIO=4&transport=websocket" + (f"&sid={sid}" if sid else "")
        sock = RawWS(f"{self.ws_base}?{query}", header=header)
        self.sockets.append(sock)
        return sock

    def ws_session(self) -> tuple[RawWS, dict]:
        """A WebSocket-only Engine.IO session and its open packet."""
        sock = self.ws()
        return sock, sock.open_packet()

    def sio_ws(self, connect: str = "40") -> tuple[RawWS, dict]:
        """A WebSocket-only session with the namespace / connected: its socket and CONNECT answer."""
        sock, _ = self.ws_session()
        sock.send(connect)
        reply = sock.recv_skip_pings()
        assert isinstance(reply, str) and reply.startswith("40{"), reply
        return sock, json.loads(reply[2:])

    def polling_session(self, connect: bool = True) -> str:
        """A polling session, with the namespace / connected when `connect`."""
        sid, _ = self.handshake()
        if connect:
            r = self.post(sid, "40")
            assert r.status_code == 200 and r.text == "ok", (r.status_code, r.text)
            packets = self.poll_until(sid, lambda p: p.startswith("40"))
            # A ping may come in the same batch after the answer.
            assert any(p.startswith('40{"sid":') for p in packets), packets
        return sid

    def poll_until(self, sid: str, predicate, timeout: float = 5, pong: bool = True) -> list[str]:
        """GETs until a packet matches `predicate` (pings answered); all packets read."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.get(sid, timeout=deadline - time.monotonic() + 1)
            assert r.status_code == 200, (r.status_code, r.text, seen)
            packets = r.text.split(RS)
            seen.extend(packets)
            if pong and "2" in packets:
                self.post(sid, "3")
            if any(predicate(p) for p in packets):
                return seen
        raise AssertionError(f"no matching packet within {timeout} s: {seen!r}")

    def close(self) -> None:
        for s in self.sockets:
            s.close()


class Pending:
    """A call running in a thread; `result()` waits for it."""

    def __init__(self, fn):
        self._value = None
        self._error: BaseException | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn):
        try:
            self._value = fn()
        except BaseException as e:  # noqa: BLE001
            self._error = e
        self.finished = time.monotonic()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float = 5):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"still waiting after {timeout} s")
        if self._error:
            raise self._error
        return self._value


# ---------------------------------------------------------------------------------------
# /v1/ws (Switchboard's JSON WebSocket protocol)


class SwitchboardWS:
    """A /v1/ws client: `command` waits for its reply; pushes are kept in order."""

    def __init__(self, srv: Server, token: str | None = None):
        header = [f"Authorization: Bearer {token}"] if token else []
        self.ws = websocket.create_connection(srv.ws_url + "/v1/ws", timeout=5, header=header)
        self.welcome = json.loads(self.ws.recv())
        assert self.welcome["type"] == "welcome", self.welcome
        self.next_id = 1
        self.pushes: list[dict] = []

    def _read(self, timeout: float) -> dict:
        self.ws.settimeout(timeout)
        return json.loads(self.ws.recv())

    def command(self, op: str, timeout: float = 5, **fields) -> dict:
        cid = self.next_id
        self.next_id += 1
        self.ws.send(json.dumps(dict(fields, id=cid, op=op)))
        deadline = time.monotonic() + timeout
        while True:
            frame = self._read(max(0.01, deadline - time.monotonic()))
            if frame.get("type") == "reply" and frame.get("id") == cid:
                return frame
            self.pushes.append(frame)

    def messages(self, channel: str, count: int, timeout: float = 5) -> list[dict]:
        """Waits until `count` message pushes of `channel` arrived; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            got = [p for p in self.pushes if p.get("type") == "message" and p.get("channel") == channel]
            if len(got) >= count:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(got)} of {count} messages on {channel}: {got!r}")
            try:
                self.pushes.append(self._read(left))
            except websocket.WebSocketTimeoutException:
                pass

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:  # noqa: BLE001
            pass


# ---------------------------------------------------------------------------------------
# python-socketio clients


class Recorder:
    """Every event a python-socketio client receives, in order: (event, args)."""

    def __init__(self):
        self.events: list[tuple[str, tuple]] = []
        self.cond = threading.Condition()

    def add(self, event: str, *args) -> None:
        with self.cond:
            self.events.append((event, args))
            self.cond.notify_all()

    def of(self, event: str) -> list:
        """The first arguments of the events named `event`, in order."""
        with self.cond:
            return [args[0] if args else None for e, args in self.events if e == event]

    def wait_match(self, event: str, predicate, timeout: float = 5):
        """Waits for an event named `event` whose first argument matches; that argument."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e, args in self.events:
                    if e == event and args and predicate(args[0]):
                        return args[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching {event!r} event within {timeout} s: {self.events!r}")
                self.cond.wait(left)

    def wait(self, event: str, count: int = 1, timeout: float = 5) -> list:
        """Waits for `count` events named `event`; their first arguments."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [args[0] if args else None for e, args in self.events if e == event]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(got)} of {count} {event!r} events within {timeout} s: {self.events!r}")
                self.cond.wait(left)
