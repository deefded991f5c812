"""Start and stop real server processes (`python -m fedgrid_node`, `python -m fedgrid_network`) on
loopback ports, for tests of any package.

Shipped with the package, as `flask.testing` is, so that the Node's, the Network's and the
end-to-end tests share one launcher. Needs `requests` (a development dependency; the servers
themselves do not use it).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A started server: its URL, its admin token, its process and the file its output goes to."""

    # How errors name the server ("Node", "Network").
    name: ClassVar[str] = "server"

    url: str
    port: int
    admin_token: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def server_env(environ: Mapping[str, str], *, drop: Iterable[str],
               database_url: str | None = None) -> dict[str, str]:
    """``environ`` without the variables in ``drop`` (so the test's flags decide), plus
    DATABASE_URL when given."""
    dropped = set(drop) | {"DATABASE_URL"}
    env = {k: v for k, v in environ.items() if k not in dropped}
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def launch(module: str, args: Iterable[str], *, env: Mapping[str, str],
           log_path: Path) -> subprocess.Popen:
    """``python -m <module> <args>``, its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", module, *args], stdout=log,
                                stderr=subprocess.STDOUT, env=dict(env))


def wait_healthy(server: ServerProcess, timeout: float = 60) -> None:
    """Wait until ``GET /health`` answers 200; fail (with the log) if the process exits first or
    after ``timeout`` seconds (then kill it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the {server.name} exited with {server.process.returncode}:\n"
                               f"{server.log()}")
        try:
            if requests.get(server.url + "/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"the {server.name} did not become healthy in {timeout:g} s:\n{server.log()}")


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; return that, or fail after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
