"""Start and stop real `fedgrid-node` processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ADMIN_TOKEN = "test-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningNode:
    url: str
    port: int
    admin_token: str
    data_dir: Path
    process: subprocess.Popen
    log_path: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    backend: str = "sqlite"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

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

    def kill(self) -> None:
        """kill -9: no chance to flush or clean up, as in a crash."""
        self.stop(signal.SIGKILL)

    def restart(self) -> RunningNode:
        """Start again on the same port, data directory and database."""
        return _launch(self.args, self.env, self.data_dir, self.port, self.admin_token)


def start_node(*, data_dir: Path, database_url: str | None = None, extra_args=(),
               admin_token: str = ADMIN_TOKEN) -> RunningNode:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GRID_ADMIN_TOKEN")}
    if database_url:
        env["DATABASE_URL"] = database_url
    args = ["--host", "127.0.0.1", "--data-dir", str(data_dir), *extra_args]
    if admin_token:
        # --flag=value: a generated token may start with "-", which argparse would take for a flag.
        args += [f"--admin-token={admin_token}"]
    return _launch(args, env, data_dir, free_port(), admin_token)


def _launch(args, env, data_dir: Path, port: int, admin_token: str) -> RunningNode:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"node-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fedgrid_node", "--port", str(port), *args],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    node = RunningNode(
        url=f"http://127.0.0.1:{port}", port=port, admin_token=admin_token, data_dir=data_dir,
        process=process, log_path=log_path, args=list(args), env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Node exited with {process.returncode}:\n{node.log()}")
        try:
            if requests.get(node.url + "/health", timeout=1).status_code == 200:
                return node
        except requests.RequestException:
            pass
        time.sleep(0.1)
    node.kill()
    raise RuntimeError(f"the Node did not become healthy in 60 s:\n{node.log()}")
