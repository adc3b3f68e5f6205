"""The official Socket.IO JavaScript client (socket.io-client 4.x) in headless Chromium against
the real server's /socket.io/ (docs/PROTOCOL.md, "Socket.IO (SPEC section 8)").

The client is fetched at test time from a PyPI wheel and cached (conftest.fetch_socketio_client);
the pages in socketio_pages/ are served by a plain HTTP server on another origin
(conftest.StaticPages), as a page written for Socket.IO would be.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import socket
import time

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

from conftest import Server, assert_no_console_errors

WAIT = 15  # seconds for things that should take well under one

# /work/shared/seeds/000_b185307969fe39ca.txt, step 4, exactly as the seed prints it (on one line).
SEED_CLIENT_CODE = (
    "const socket = io('http://localhost:3000'); socket.on('data_updated', newData => { "
    "console.log('Received updated data:', newData); "
    "// Update the client interface or perform other processing here });"
)

# What a browser logs while a server it talks to is down (the restart tests) — expected there.
RECONNECT_NOISE = (
    r"WebSocket connection to 'ws://[^']+/socket\.io/[^']*' failed"
    r"|/socket\.io/\?EIO=4[^ ]* - Failed to load resource: net::ERR_CONNECTION_REFUSED"
)


def wait(driver, condition, timeout: float = WAIT, message=""):
    """WebDriverWait; `message` may be a callable, then it describes the state at the timeout."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))
    except TimeoutException:
        pass
    pytest.fail(f"timed out after {timeout} s: " + (message() if callable(message) else message), pytrace=False)


def port_in_use(port: int) -> str | None:
    """Why `port` cannot be ours on loopback (something listens on 127.0.0.1 or ::1), or None."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family) as s:
                s.settimeout(0.5)
                if s.connect_ex((host, port)) == 0:
                    return f"something already listens on [{host}]:{port}"
        except OSError:  # no IPv6 here
            continue
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return f"cannot bind 127.0.0.1:{port}: {e}"
    return None


def hs256_token(secret: str, claims: dict) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest())


def server_log_on_failure(server: Server):
    return f"\n--- server log ({server.log_path}) ---\n{server.log()}"


# --- 1. The seed's page, unchanged, against a server on http://localhost:3000 -----------------

@pytest.fixture
def seed_server(tmp_path, static_pages):
    """Switchboard on port 3000 (the seed's code says http://localhost:3000), secured by the API
    key, allowing the static pages' origin; every Socket.IO connection joins data_updated."""
    busy = port_in_use(3000)
    if busy:
        pytest.fail(f"the seed's page connects to http://localhost:3000, but {busy}: stop it and rerun", pytrace=False)
    srv = Server(tmp_path, port=3000, config={
        "socketio": {"channels": ["data_updated"], "recovery": False},
        "allowed_origins": [static_pages.origin],
    })
    srv.start()
    yield srv
    srv.stop()


def test_seed_page_receives_rest_publishes_in_order(seed_server, static_pages, browser, console):
    d = browser()
    d.get(static_pages.url("seed.html"))
    # The page's code is the seed's: only whitespace differs (the restored line breaks).
    code = d.execute_script("return document.getElementById('seed').textContent")
    assert " ".join(code.split()) == SEED_CLIENT_CODE
    # Why they had to be restored: on one line the comment swallows the closing `});`.
    assert d.execute_script("try { new Function(arguments[0]); return 'ok'; } catch (e) { return e.name; }",
                            SEED_CLIENT_CODE) == "SyntaxError"
    wait(d, lambda d: d.execute_script("return typeof socket === 'object' && socket.connected === true"),
         message=lambda: "the seed's socket never connected" + server_log_on_failure(seed_server))

    updates = [
        [{"symbol": "AAPL", "price": 189.5}],
        [{"symbol": "AAPL", "price": 190.25}, {"symbol": "MSFT", "price": 410}],
        {"nested": {"list": [1, 2, {"deep": None}], "flag": False}, "text": "héllo ✓ \"quoted\"\nline two"},
        "a plain string",
        42,
        -0.125,
        True,
        [],
        {},
        {"big": "x" * 5000},
    ]
    # The first half right after connecting (while the client may still be upgrading from
    # long-polling), the rest once it is on the WebSocket.
    for data in updates[:5]:
        seed_server.publish("data_updated", data)
    wait(d, lambda d: d.execute_script("return socket.io.engine.transport.name") == "websocket", timeout=5,
         message="the transport was not upgraded to websocket")
    for data in updates[5:]:
        seed_server.publish("data_updated", data)

    expected = [["Received updated data:", data] for data in updates]
    wait(d, lambda d: d.execute_script("return window.__consoleLog.length") >= len(updates),
         message=lambda: "not every update arrived: " + json.dumps(d.execute_script("return window.__consoleLog")))
    time.sleep(0.3)  # nothing more (no duplicates) arrives
    assert d.execute_script("return window.__consoleLog") == expected
    assert d.execute_script("return socket.io.engine.transport.name") == "websocket"

    # Chromium's own console log shows the same calls, in the same order.
    console.collect(d)
    logged = [e["message"] for e in console.entries if "Received updated data:" in e.get("message", "")]
    assert len(logged) == len(updates), logged
    assert '"a plain string"' in logged[3] and logged[4].endswith(" 42") and logged[5].endswith(" -0.125"), logged
    assert_no_console_errors(console, d)


# --- 2. Connection state recovery with the real client -----------------------------------------

@pytest.fixture
def recovery_server(tmp_path, static_pages):
    srv = Server(tmp_path, config={
        "socketio": {"recovery": True, "channels": ["ticker"]},
        "allowed_origins": [static_pages.origin],
    })
    srv.start()
    yield srv
    srv.stop()


def page_events(d) -> list:
    return d.execute_script("return window.events")


def restart_and_publish(server: Server, console, data: list) -> float:
    """Restart the server and publish `data` at once, before the client's first reconnection
    attempt (socket.io-client: reconnectionDelay 1 s ± 50 %, so at least 0.5 s after the drop);
    the browser's failed attempts meanwhile are expected. Returns the seconds it took."""
    start = time.time()
    server.restart()
    for item in data:
        server.publish("ticker", item)
    took = time.time() - start
    console.allow(RECONNECT_NOISE, start * 1000 - 1000, time.time() * 1000 + 15000)
    return took


def check_recovered(d, server: Server, transport: str, before: list, after: list, took: float) -> None:
    """The page got `before` then `after`, each once, in order, and reconnected with
    socket.recovered === true; `after` (published while it was away) came with the recovery,
    before its `connect`, as Socket.IO's own server delivers missed packets."""
    connects = lambda: [e for e in page_events(d) if e[0] == "connect"]
    wait(d, lambda d: len(connects()) >= 2, timeout=20,
         message=lambda: f"no reconnect: {page_events(d)}" + server_log_on_failure(server))
    wait(d, lambda d: len([e for e in page_events(d) if e[0] == "ticker"]) >= len(before) + len(after),
         timeout=5, message=lambda: f"missed events never arrived: {page_events(d)}" + server_log_on_failure(server))
    time.sleep(0.3)  # nothing more (no duplicates) arrives
    events = page_events(d)
    tickers = [e[1] for e in events if e[0] == "ticker"]
    assert tickers == before + after, f"events: {events}" + server_log_on_failure(server)
    assert [e[1] for e in events if e[0] == "connect"] == [False, True], f"socket.recovered per connect: {events}" + server_log_on_failure(server)
    assert d.execute_script("return socket.recovered") is True
    # Every event carries the offset Socket.IO's recovery sends back; each one is new.
    offsets = [e[2] for e in events if e[0] == "ticker"]
    assert all(isinstance(o, str) and o for o in offsets) and len(set(offsets)) == len(offsets), events
    # The order the page saw: connect, what came before, the drop, the missed events, then the
    # recovered connect (missed events are emitted before `connect`).
    story = [e[0] if e[0] != "ticker" else e[1] for e in events if e[0] != "connect_error"]
    assert story == ["connect", *before, "disconnect", *after, "connect"], \
        f"restart + publish took {took:.3f} s; events: {events}" + server_log_on_failure(server)
    if transport == "websocket":
        assert all(e[2] == "websocket" for e in events if e[0] == "connect"), events
    else:  # long-polling first (the CONNECT may be answered before or after the upgrade), then the upgrade
        wait(d, lambda d: d.execute_script("return socket.io.engine.transport.name") == "websocket", timeout=5,
             message=lambda: "the reconnected client did not upgrade to websocket within 5 s (it stays on long-polling); "
             f"events: {page_events(d)}" + server_log_on_failure(server))


@pytest.mark.parametrize("transport, version", [
    ("websocket", "4.8.1"),
    ("default", "4.8.1"),
    ("websocket", "4.6.0"),  # the first release with connection state recovery
])
def test_recovery_across_a_restart(recovery_server, static_pages, browser, console, transport, version):
    d = browser()
    d.get(static_pages.url("recovery.html", version, server=recovery_server.api_url, transports=transport))
    wait(d, lambda d: [e[0] for e in page_events(d)] == ["connect"],
         message=lambda: f"no connect: {page_events(d)}" + server_log_on_failure(recovery_server))
    a = {"seq": "A", "price": 100.5}
    recovery_server.publish("ticker", a)
    wait(d, lambda d: [e[1] for e in page_events(d) if e[0] == "ticker"] == [a],
         message=lambda: f"A never arrived: {page_events(d)}" + server_log_on_failure(recovery_server))

    b, c = {"seq": "B", "price": 101}, {"seq": "C", "price": 99.75}
    took = restart_and_publish(recovery_server, console, [b, c])
    check_recovered(d, recovery_server, transport, [a], [b, c], took)

    # Live again: the next publish arrives once, without a restart.
    e = {"seq": "D"}
    recovery_server.publish("ticker", e)
    wait(d, lambda d: [x[1] for x in page_events(d) if x[0] == "ticker"] == [a, b, c, e])
    assert_no_console_errors(console, d)


@pytest.mark.parametrize("transport", ["websocket", "default"])
def test_recovery_of_a_client_that_received_nothing(recovery_server, static_pages, browser, console, transport):
    """The pid alone (no offset yet) carries the positions at connect: Node's Socket.IO server
    cannot recover such a client, ours must."""
    d = browser()
    d.get(static_pages.url("recovery.html", server=recovery_server.api_url, transports=transport))
    wait(d, lambda d: [e[0] for e in page_events(d)] == ["connect"],
         message=lambda: f"no connect: {page_events(d)}" + server_log_on_failure(recovery_server))
    time.sleep(0.3)  # default transports: let the first upgrade happen (or not) before the restart
    missed = [{"seq": "first after the restart"}, {"seq": "second"}]
    took = restart_and_publish(recovery_server, console, missed)
    check_recovered(d, recovery_server, transport, [], missed, took)
    assert_no_console_errors(console, d)


# --- 3. A refusal: a secured server whose namespace is not anonymous ------------------------------

JWT_SECRET = "browser-tests-jwt-secret-0123456789abcdef"  # HS256: at least 32 bytes


@pytest.fixture
def secured_server(tmp_path, static_pages):
    srv = Server(tmp_path, env={"SWITCHBOARD_JWT_SECRET": JWT_SECRET}, config={
        "namespaces": {"": {"anonymous": False}},
        "allowed_origins": [static_pages.origin],
    })
    srv.start()
    yield srv
    srv.stop()


def connect_outcome(d, static_pages, server: Server, token: str) -> dict:
    d.get(static_pages.url("refusal.html", server=server.api_url, token=token))
    wait(d, lambda d: d.execute_script("return window.outcome") is not None,
         message=lambda: "neither connect nor connect_error" + server_log_on_failure(server))
    return d.execute_script("return window.outcome")


def test_a_garbage_token_is_refused(secured_server, static_pages, browser, console):
    # After connect_error the client closes its Engine.IO session (POST "1") while its next
    # long-poll GET is on the way; when the close is handled first, that GET is answered 400
    # "Session ID unknown" (so would Node's engine.io), which Chromium logs: expected here.
    console.allow(r"/socket\.io/\?EIO=4&transport=polling[^ ]*&sid=[^ ]* - Failed to load resource: "
                  r"the server responded with a status of 400", 0, float("inf"))
    d = browser()
    outcome = connect_outcome(d, static_pages, secured_server, "garbage")
    assert "connect_error" in outcome, f"{outcome}" + server_log_on_failure(secured_server)
    error = outcome["connect_error"]
    assert "token" in error["message"].lower(), error
    assert (error["data"] or {}).get("code") == "unauthorized", error
    assert outcome["active"] is False, "a refused CONNECT is final: the client does not retry"

    # The message says what is wrong with a token, never the token itself.
    outcome = connect_outcome(d, static_pages, secured_server, "not-a-jwt-q7Zx")
    assert "connect_error" in outcome and "q7Zx" not in outcome["connect_error"]["message"], outcome

    # The same page with a good token connects: the refusal was about the token only.
    good = hs256_token(JWT_SECRET, {"sub": "alice", "channels": ["ticker"], "exp": int(time.time()) + 600})
    outcome = connect_outcome(d, static_pages, secured_server, good)
    assert "connect" in outcome, f"{outcome}" + server_log_on_failure(secured_server)
    d.execute_script("socket.disconnect()")  # leaves nothing for the server's drain to wait for
    assert_no_console_errors(console, d)


# --- The upgrade race the default-transport pages above run into, without a browser -------------

def test_a_poll_sent_after_the_probe_is_released_for_the_upgrade(tmp_path):
    """socket.io-client finishes an upgrade (sends `5`) only once its long-poll GET has
    returned. When that GET reaches the server after the `2probe` was answered — the browser
    sends the next GET as soon as one returns, e.g. the one carrying the CONNECT answer — the
    server must still answer it with a noop: Node's engine.io does (it writes a noop to the
    polling transport at the probe and every 100 ms until the upgrade), python-engineio queues
    one. Otherwise the upgrade waits for the next message or ping (pingInterval, 25 s), and the
    client's own emits wait with it."""
    import urllib.request

    import websocket  # websocket-client (a dependency of selenium)

    srv = Server(tmp_path, config={"socketio": {"channels": ["ticker"]}})
    srv.start()
    base = srv.api_url + "/socket.io/?EIO=4&transport=polling"

    def get(sid: str, timeout: float = 5) -> str:
        with urllib.request.urlopen(f"{base}&sid={sid}", timeout=timeout) as r:
            return r.read().decode()

    ws = None
    try:
        with urllib.request.urlopen(base, timeout=5) as r:
            sid = json.loads(r.read().decode()[1:])["sid"]
        request = urllib.request.Request(f"{base}&sid={sid}", data=b"40", method="POST",
                                         headers={"Content-Type": "text/plain;charset=UTF-8"})
        with urllib.request.urlopen(request, timeout=5) as r:
            assert r.read() == b"ok"
        assert get(sid).startswith("40{")  # the CONNECT answer; no GET is waiting now
        ws = websocket.create_connection(srv.api_url.replace("http://", "ws://") + f"/socket.io/?EIO=4&transport=websocket&sid={sid}", timeout=5)
        ws.send("2probe")
        assert ws.recv() == "3probe"
        start = time.monotonic()
        try:
            answer = get(sid, timeout=3)
        except OSError as e:  # socket.timeout is an OSError
            answer = e
        if isinstance(answer, Exception):
            pytest.fail(f"a GET sent after the probe was answered got no answer within 3 s ({answer}): the client "
                        "cannot finish its upgrade until the next message or ping" + server_log_on_failure(srv), pytrace=False)
        assert answer == "6", answer
        assert time.monotonic() - start < 1
        ws.send("5")
        srv.publish("ticker", {"after": "upgrade"})
        assert ws.recv() == '42["ticker",{"after":"upgrade"}]'
    finally:
        if ws:
            ws.close()
        srv.stop()


def test_a_restart_releases_a_waiting_long_poll_at_once(tmp_path):
    """On SIGTERM the server ends every connection for a restart at once (docs/PROTOCOL.md:
    "restart … ends the transport, and the client reconnects by itself"); the WebSocket
    clients above see that at once. A long-polling client's waiting GET must be answered too
    (a close packet, or an error), not held until --drain-timeout (2 s in these tests, 10 s by
    default) runs out and then cut without a response."""
    import threading
    import urllib.error
    import urllib.request

    srv = Server(tmp_path, config={"socketio": {"channels": ["ticker"]}})
    srv.start()
    base = srv.api_url + "/socket.io/?EIO=4&transport=polling"
    try:
        with urllib.request.urlopen(base, timeout=5) as r:
            sid = json.loads(r.read().decode()[1:])["sid"]
        request = urllib.request.Request(f"{base}&sid={sid}", data=b"40", method="POST",
                                         headers={"Content-Type": "text/plain;charset=UTF-8"})
        with urllib.request.urlopen(request, timeout=5) as r:
            assert r.read() == b"ok"
        with urllib.request.urlopen(f"{base}&sid={sid}", timeout=5) as r:
            assert r.read().startswith(b"40{")
        outcome: dict = {}

        def poll():
            try:
                with urllib.request.urlopen(f"{base}&sid={sid}", timeout=15) as r:
                    outcome["answer"] = (r.status, r.read().decode())
            except urllib.error.HTTPError as e:
                outcome["answer"] = (e.code, e.read().decode())
            except OSError as e:
                outcome["error"] = repr(e)
            outcome["at"] = time.monotonic()

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        time.sleep(0.3)  # the GET is waiting
        assert poller.is_alive(), outcome
        sigterm = time.monotonic()
        srv.process.send_signal(signal.SIGTERM)
        poller.join(15)
        srv.process.wait(15)
        took = outcome.get("at", time.monotonic()) - sigterm
        assert "answer" in outcome and took < 1, (
            f"the waiting GET got {outcome.get('answer') or outcome.get('error')} {took:.2f} s after SIGTERM "
            "(the drain timeout is 2 s)" + server_log_on_failure(srv))
    finally:
        srv.stop()
