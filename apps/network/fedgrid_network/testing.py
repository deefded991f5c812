"""Start and stop real `fedgrid-network` processes on loopback ports (for tests of any package).

Shipped with the package, as `flask.testing` is, so the Node's and the end-to-end tests can run a
Network without importing test code across packages. The launcher itself is the one the Node's
tests use too (`fedgrid_server.testing`). Needs `requests` (a development dependency; the Network
itself does not use it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import requests

from fedgrid_server.testing import (
    ServerProcess,
    free_port,
    launch,
    server_env,
    wait_for,
    wait_healthy,
)

__all__ = ["RunningNetwork", "free_port", "start_network", "wait_for", "wait_healthy"]

REGISTRATION_SECRET = "test-network-secret"
ADMIN_TOKEN = "test-network-admin-token"


@dataclass
class RunningNetwork(ServerProcess):
    name: ClassVar[str] = "Network"

    secret: str  # the registration secret Nodes join with

    def nodes(self) -> dict[str, dict]:
        answer = requests.get(f"{self.url}/nodes", timeout=10)
        answer.raise_for_status()
        return {node["node_id"]: node for node in answer.json()["nodes"]}


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
    env = server_env(os.environ, drop=("NETWORK_SECRET", "GRID_ADMIN_TOKEN"),
                     database_url=database_url)
    args = ["--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir), f"--network-secret={secret}", f"--admin-token={admin_token}",
            "--heartbeat-interval", str(heartbeat_interval)]
    if offline_after:
        args += ["--offline-after", str(offline_after)]
    log_path = data_dir / f"network-{port}.log"
    process = launch("fedgrid_network", args, env=env, log_path=log_path)
    network = RunningNetwork(url=f"http://127.0.0.1:{port}", port=port, secret=secret,
                             admin_token=admin_token, process=process, log_path=log_path)
    if wait:
        wait_healthy(network)
    return network
