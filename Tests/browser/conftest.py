"""Fixtures for the browser tests: the real server binary and headless Chromium.

- SWITCHBOARD_BIN: the server binary (default .build/debug/switchboard in the repo).
- CHROMIUM_BIN / CHROMEDRIVER: default /usr/bin/chromium and /usr/bin/chromedriver.
- SWITCHBOARD_BROWSER_PROXY=1: serve Public/ from the source tree through devproxy.py
  (same origin, API passed to the server) instead of from the server itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

# The server process is shared with Tests/socketio: Tests/pysupport/switchboard_server.py.
_PYSUPPORT = str(Path(__file__).resolve().parents[1] / "pysupport")
if _PYSUPPORT not in sys.path:
    sys.path.insert(0, _PYSUPPORT)

from switchboard_server import REPO, SwitchboardProcess  # noqa: E402

PUBLIC = REPO / "Sources" / "SwitchboardServer" / "Public"
IMAGES = REPO / "docs" / "images"
API_KEY = "browser-tests-key-0123456789abcdef"


class Server(SwitchboardProcess):
    """The switchboard binary on a fixed port and SQLite file, restartable in place."""

    def __init__(self, workdir: Path, port: int | None = None, config: dict | None = None,
                 env: dict | None = None, api_key: str | None = API_KEY):
        """config: written as the --config file (JSON, which the YAML loader reads too);
        env: extra environment (SWITCHBOARD_JWT_SECRET, …); api_key=None runs in development mode."""
        super().__init__(workdir, port=port, database="switchboard.sqlite", api_key=api_key, env=env)
        if config is not None:
            self.config_path = workdir / "switchboard-config.json"
            self.config_path.write_text(json.dumps(config, indent=2))
        self.proxy = None

    @property
    def url(self) -> str:
        """Where pages are loaded from (the server itself, or the dev proxy)."""
        return f"http://127.0.0.1:{self.proxy.port}" if self.proxy else self.api_url

    def start(self, timeout: float = 60) -> None:
        # The binary may be being rebuilt by another process: launch waits for it to be back.
        self.launch(time.monotonic() + timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def rest(self, method: str, path: str, body=None, key: bool = True, headers: dict | None = None):
        """(status, JSON or None) of a REST call, with the API key unless key=False."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if key and self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                text = r.read()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            text = e.read()
            return e.code, json.loads(text) if text else None

    def publish(self, channel: str, data) -> dict:
        status, body = self.rest("POST", f"/v1/channels/{channel}/messages", {"data": data})
        assert status == 201, (status, body)
        return body

    def put(self, collection: str, record_id: str, data: dict) -> dict:
        status, body = self.rest("PUT", f"/v1/collections/{collection}/{record_id}", data)
        assert status in (200, 201), (status, body)
        return body


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    srv.start()
    if os.environ.get("SWITCHBOARD_BROWSER_PROXY") == "1":
        from devproxy import DevProxy

        srv.proxy = DevProxy(str(PUBLIC), srv.port).start()
    yield srv
    srv.stop()
    if srv.proxy:
        srv.proxy.stop()


class ConsoleLog:
    """Everything a browser logged, and the SEVERE entries a test expects (by pattern and time)."""

    def __init__(self):
        self.entries: list[dict] = []
        self.allowed: list[tuple[re.Pattern, float, float]] = []

    def allow(self, pattern: str, start_ms: float, end_ms: float) -> None:
        self.allowed.append((re.compile(pattern), start_ms, end_ms))

    def collect(self, driver) -> None:
        try:
            self.entries.extend(driver.get_log("browser"))
        except Exception:  # the browser is gone
            pass

    def errors(self) -> list[dict]:
        out = []
        for e in self.entries:
            if e.get("level") != "SEVERE":
                continue
            if any(p.search(e.get("message", "")) and start <= e.get("timestamp", 0) <= end for p, start, end in self.allowed):
                continue
            out.append(e)
        return out


def _chrome_options() -> Options:
    options = Options()
    options.binary_location = os.environ.get("CHROMIUM_BIN", shutil.which("chromium") or "/usr/bin/chromium")
    for arg in ("--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


@pytest.fixture
def console():
    return ConsoleLog()


@pytest.fixture
def browser(console):
    """A factory of headless Chromium drivers; each test's console errors fail it."""
    drivers = []
    service_path = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")

    def make():
        driver = webdriver.Chrome(service=Service(service_path), options=_chrome_options())
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    yield make
    for d in drivers:
        console.collect(d)
        d.quit()
    errors = console.errors()
    assert not errors, "JavaScript console errors:\n" + "\n".join(e["message"] for e in errors)


def assert_no_console_errors(console: ConsoleLog, *drivers) -> None:
    for d in drivers:
        console.collect(d)
    errors = console.errors()
    assert not errors, "JavaScript console errors:\n" + "\n".join(e["message"] for e in errors)


def screenshot(driver, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(IMAGES / name))


# --- Socket.IO: the official JavaScript client, fetched at test time, and a static page server ---

# socket.io-client's browser bundle (UMD, global `io`), taken out of PyPI wheels that ship it.
# Never committed: fetched with pip on first use and cached (SWITCHBOARD_TEST_CACHE, else
# $XDG_CACHE_HOME/switchboard-tests, else ~/.cache/switchboard-tests). See /work/notes/socketio-clients.md.
SOCKETIO_CLIENTS = {
    "4.8.1": {"requirement": "nicegui==3.18.0", "member": "nicegui/static/socket.io.min.js",
              "sha256": "b0e735814f8dcfecd6cdb8a7ce95a297a7e1e5f2727a29e6f5901801d52fa0c5"},
    "4.6.0": {"requirement": "flyweb-framework==0.4.1", "member": "flyweb/static/socket.io.min.js",
              "sha256": "0401de33701f1cad16ecf952899d23990b6437d0a5b7335524edf6bdfb932542"},
}
SOCKETIO_PAGES = Path(__file__).resolve().parent / "socketio_pages"


def _cache_dir() -> Path:
    if os.environ.get("SWITCHBOARD_TEST_CACHE"):
        return Path(os.environ["SWITCHBOARD_TEST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "switchboard-tests"


def fetch_socketio_client(version: str) -> Path:
    """The path of socket.io.min.js of that version, downloading its wheel once. Fails the test
    (never skips) when it cannot be had: these tests are about that exact client."""
    import hashlib
    import sys
    import tempfile
    import zipfile

    spec = SOCKETIO_CLIENTS[version]
    target = _cache_dir() / f"socket.io-{version}.min.js"
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == spec["sha256"]:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="socketio-wheel-") as tmp:
        command = [sys.executable, "-m", "pip", "download", spec["requirement"], "--no-deps",
                   "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", tmp]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.fail(f"could not download socket.io-client {version} ({' '.join(command)}): {e}", pytrace=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            pytest.fail(f"could not download socket.io-client {version} with `{' '.join(command)}` "
                        f"(exit {done.returncode}):\n{done.stdout}{done.stderr}", pytrace=False)
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                body = wheel.read(spec["member"])
        except (KeyError, zipfile.BadZipFile) as e:
            pytest.fail(f"{wheels[0].name} has no usable {spec['member']}: {e}", pytrace=False)
    digest = hashlib.sha256(body).hexdigest()
    if digest != spec["sha256"]:
        pytest.fail(f"socket.io-client {version} from {spec['requirement']} has sha256 {digest}, "
                    f"expected {spec['sha256']}", pytrace=False)
    partial = target.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(body)
    partial.replace(target)
    return target


@pytest.fixture(scope="session")
def socketio_client():
    """fetch(version="4.8.1") -> Path of the cached socket.io.min.js (downloaded at most once)."""
    fetched: dict[str, Path] = {}

    def fetch(version: str = "4.8.1") -> Path:
        if version not in fetched:
            fetched[version] = fetch_socketio_client(version)
        return fetched[version]

    return fetch


class StaticPages:
    """A plain HTTP server on 127.0.0.1 (another origin than the Switchboard server) serving
    Tests/browser/socketio_pages/ under /<client version>/, where socket.io.min.js is that
    version of the official client: /4.8.1/seed.html loads /4.8.1/socket.io.min.js."""

    def __init__(self, root: Path, fetch):
        import http.server
        import threading

        pages = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def translate_path(self, path):
                from urllib.parse import unquote, urlsplit

                parts = unquote(urlsplit(path).path).strip("/").split("/")
                if len(parts) == 2 and parts[0] in pages.versions and parts[1] == "socket.io.min.js":
                    return str(pages.versions[parts[0]])
                if len(parts) == 2 and parts[0] in pages.versions and "/" not in parts[1] and parts[1] not in ("", ".", ".."):
                    return str(root / parts[1])
                return str(root / "__missing__")

            def end_headers(self):
                self.send_header("Cache-Control", "no-store")
                super().end_headers()

            def log_message(self, format, *args):
                pages.requests.append(format % args)

        self.fetch = fetch
        self.versions: dict[str, Path] = {}
        self.requests: list[str] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="static-pages", daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, page: str, version: str = "4.8.1", **query) -> str:
        """The URL of a page with that client version (fetched now if need be)."""
        from urllib.parse import urlencode

        self.versions[version] = self.fetch(version)
        return f"{self.origin}/{version}/{page}" + (f"?{urlencode(query)}" if query else "")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="session")
def static_pages(socketio_client):
    pages = StaticPages(SOCKETIO_PAGES, socketio_client)
    yield pages
    pages.stop()
