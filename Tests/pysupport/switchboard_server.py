"""The switchboard server binary as a child process, shared by the Python test suites
(Tests/socketio/sio_support.py and Tests/browser/conftest.py put this directory on sys.path).

`SwitchboardProcess` runs `switchboard serve` on 127.0.0.1 with an SQLite file in a work
directory, waits for /healthz, stops it with SIGTERM (kill after 15 s) and reads its log.
Each suite subclasses it with its own configuration, start policy and REST helpers.
Standard library only (urllib), so that it adds no dependency to either suite.

SWITCHBOARD_BIN overrides the binary (default .build/debug/switchboard in the repository;
a relative path is taken from the repository root).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Variables the server reads that the tests set themselves (or leave unset) on purpose.
_SERVER_ENV = ("SWITCHBOARD_API_KEY", "SWITCHBOARD_CONFIG", "SWITCHBOARD_JWT_SECRET", "SWITCHBOARD_HOST",
               "SWITCHBOARD_PORT", "SWITCHBOARD_DATABASE")


def server_binary() -> Path:
    path = Path(os.environ.get("SWITCHBOARD_BIN", REPO / ".build" / "debug" / "switchboard"))
    return path if path.is_absolute() else REPO / path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SwitchboardProcess:
    """The switchboard binary on a port of 127.0.0.1 and an SQLite file in `workdir`.

    api_key: SWITCHBOARD_API_KEY (None runs in development mode); env: extra environment
    (SWITCHBOARD_JWT_SECRET, …); `config_path`, when a subclass sets it, is passed as --config.
    """

    def __init__(self, workdir: Path, port: int | None = None, database: str = "switchboard.sqlite",
                 api_key: str | None = None, env: dict | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.database = workdir / database
        self.log_path = workdir / "server.log"
        self.config_path: Path | None = None
        self.api_key = api_key
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self, deadline: float, ready_timeout: float | None = None) -> None:
        """Runs the binary once and returns when /healthz answers 200. Waits (until the
        `deadline` of time.monotonic()) for the binary to be there, as another process may be
        rebuilding it; after the start, waits for /healthz until the deadline, or at most
        `ready_timeout` seconds. RuntimeError (with the log) when the server cannot be run,
        exits or does not answer in time; the process is then left to `stop()`."""
        binary = server_binary()
        while not os.access(binary, os.X_OK):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no server binary at {binary}; build it or set SWITCHBOARD_BIN")
            time.sleep(0.5)
        env = dict(os.environ)
        for name in _SERVER_ENV:
            env.pop(name, None)
        if self.api_key:
            env["SWITCHBOARD_API_KEY"] = self.api_key
        env.update(self.extra_env)
        args = [str(binary), "serve", "--port", str(self.port), "--database", f"sqlite:{self.database}",
                "--drain-timeout", "2"]
        if self.config_path:
            args += ["--config", str(self.config_path)]
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir)
        except OSError as e:  # "text file busy" while the linker writes it
            raise RuntimeError(f"could not run {binary}: {e}") from None
        finally:
            log.close()
        if ready_timeout is not None:
            deadline = min(deadline, time.monotonic() + ready_timeout)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.api_url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, http.client.HTTPException):  # not listening yet, or not 200 (HTTPError)
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /healthz:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within 15 s."""
        if not self.process or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        """The last 4000 characters of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""
