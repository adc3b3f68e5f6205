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
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

REPO = Path(__file__).resolve().parents[2]
PUBLIC = REPO / "Sources" / "SwitchboardServer" / "Public"
IMAGES = REPO / "docs" / "images"
API_KEY = "browser-tests-key-0123456789abcdef"


def _binary() -> Path:
    path = Path(os.environ.get("SWITCHBOARD_BIN", REPO / ".build" / "debug" / "switchboard"))
    return path if path.is_absolute() else REPO / path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The switchboard binary on a fixed port and SQLite file, restartable in place."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.database = workdir / "switchboard.sqlite"
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen | None = None
        self.proxy = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Where pages are loaded from (the server itself, or the dev proxy)."""
        return f"http://127.0.0.1:{self.proxy.port}" if self.proxy else self.api_url

    def start(self, timeout: float = 60) -> None:
        binary = _binary()
        deadline = time.monotonic() + timeout
        # The binary may be being rebuilt by another process: wait for it to be back.
        while not os.access(binary, os.X_OK):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no server binary at {binary}; build it or set SWITCHBOARD_BIN")
            time.sleep(0.5)
        env = dict(os.environ, SWITCHBOARD_API_KEY=API_KEY)
        for name in ("SWITCHBOARD_CONFIG", "SWITCHBOARD_JWT_SECRET", "SWITCHBOARD_HOST", "SWITCHBOARD_PORT", "SWITCHBOARD_DATABASE"):
            env.pop(name, None)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(binary), "serve", "--port", str(self.port), "--database", f"sqlite:{self.database}", "--drain-timeout", "2"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
        )
        log.close()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.api_url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /healthz:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if not self.process or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def rest(self, method: str, path: str, body=None, key: bool = True, headers: dict | None = None):
        """(status, JSON or None) of a REST call, with the API key unless key=False."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if key:
            request.add_header("Authorization", f"Bearer {API_KEY}")
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
