"""Fixtures for the Socket.IO tests: the real server binary, REST helpers, raw Engine.IO.
The helpers themselves are in sio_support.py.

Servers (one per test session, started when first used):
- `server`: production mode (API key and HS256 secret), heartbeat 1 s, Socket.IO channel
  `data_updated` joined at connect, recovery off, namespaces "" (anonymous, no client
  publish), chat (anonymous, client publish, presence) and private (no anonymous access).
- `suite_server`: development mode for the ports of the official protocol suites:
  heartbeat 1 s (pingInterval = pingTimeout = 1000 ms), maxPayload 1000000, no channels
  joined at connect, recovery off.

Other fixtures: `eio` / `suite` (raw Engine.IO on either server), `v1ws` (a factory of
/v1/ws clients), `sio_client` (a factory of python-socketio clients with their events).
"""

from __future__ import annotations

import pytest

from sio_support import (
    API_KEY,
    JWT_SECRET,
    SECURED_CONFIG,
    SUITE_CONFIG,
    EngineIO,
    Recorder,
    SwitchboardWS,
    run_server,
)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Production mode: the API key and an HS256 secret."""
    yield from run_server(tmp_path_factory, "secured", SECURED_CONFIG, api_key=API_KEY, jwt_secret=JWT_SECRET)


@pytest.fixture(scope="session")
def suite_server(tmp_path_factory):
    """Development mode, maxPayload 1000000, for the official protocol suites."""
    yield from run_server(tmp_path_factory, "suite", SUITE_CONFIG)


@pytest.fixture
def eio(server):
    e = EngineIO(server)
    yield e
    e.close()


@pytest.fixture
def suite(suite_server):
    e = EngineIO(suite_server)
    yield e
    e.close()


@pytest.fixture
def v1ws(server):
    made = []

    def make(token: str | None = None) -> SwitchboardWS:
        c = SwitchboardWS(server, token)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def sio_client(server):
    """A factory of python-socketio clients (reconnection off) with a Recorder as `.rec`,
    connected to the secured server unless connect=False; all disconnected at teardown."""
    import socketio

    made = []

    def make(connect: bool = True, url: str | None = None, **connect_args):
        sio = socketio.Client(reconnection=False)
        rec = Recorder()
        sio.rec = rec
        sio.on("*", lambda event, *args: rec.add(event, *args))
        sio.on("connect_error", lambda *args: rec.add("connect_error", *args))
        sio.on("disconnect", lambda *args: rec.add("disconnect", *args))
        call = sio.call
        # A missing acknowledgement fails in seconds, not python-socketio's default minute.
        sio.call = lambda event, data=None, namespace=None, timeout=5: call(event, data, namespace=namespace,
                                                                           timeout=timeout)
        made.append(sio)
        if connect:
            connect_args.setdefault("wait_timeout", 5)
            sio.connect(url or server.url, **connect_args)
        return sio

    yield make
    for sio in made:
        try:
            sio.disconnect()
        except Exception:  # noqa: BLE001
            pass
