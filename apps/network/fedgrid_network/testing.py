"""Start and stop real `fedgrid-network` processes on loopback ports (for tests of any package).

Shipped with the package, as `flask.testing` is, so the Node's and the end-to-end tests can run a
Network without importing test code across packages. Needs `requests` (a development dependency;
the Network itself does not use it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

REGISTRATION_SECRET = "test-network-secret"
ADMIN_TOKEN = "test-network-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningNetwork:
    url: str
    port: int
    secret: str
    admin_token: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def nodes(self) -> dict[str, dict]:
        answer = requests.get(f"{self.url}/nodes", timeout=10)
        answer.raise_for_status()
        return {node["node_id"]: node for node in answer.json()["nodes"]}

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_network(
    *,
    data_dir: Path,
    port: int | None = None,
    database_url: str | None = None,
    heartbeat_interval: float = 0.5,
    offline_after: float | None = None,
    secret: str = REGISTRATION_SECRET,
    admin_token: str = ADMIN_TOKEN,
    wait: bool = True,
) -> RunningNetwork:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "NETWORK_SECRET", "GRID_ADMIN_TOKEN")}
    if database_url:
        env["DATABASE_URL"] = database_url
    args = [sys.executable, "-m", "fedgrid_network", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir), f"--network-secret={secret}", f"--admin-token={admin_token}",
            "--heartbeat-interval", str(heartbeat_interval)]
    if offline_after:
        args += ["--offline-after", str(offline_after)]
    log_path = data_dir / f"network-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    network = RunningNetwork(url=f"http://127.0.0.1:{port}", port=port, secret=secret,
                             admin_token=admin_token, process=process, log_path=log_path)
    if wait:
        wait_healthy(network)
    return network


def wait_healthy(network: RunningNetwork, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if network.process.poll() is not None:
            raise RuntimeError(f"the Network exited with {network.process.returncode}:\n"
                               f"{network.log()}")
        try:
            if requests.get(network.url + "/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    network.stop(signal.SIGKILL)
    raise RuntimeError(f"the Network did not become healthy in {timeout} s:\n{network.log()}")


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
