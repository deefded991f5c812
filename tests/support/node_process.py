"""Start and stop real `fedgrid-node` processes on free loopback ports (the launcher is
`fedgrid_server.testing`'s, which the Network's tests use too)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from fedgrid_server.testing import ServerProcess, free_port, launch, server_env, wait_healthy

__all__ = ["ADMIN_TOKEN", "RunningNode", "free_port", "start_node", "wait_healthy"]

ADMIN_TOKEN = "test-admin-token"
# For tests that read what a Node holds from its RSS: glibc's allocator left as glibc sets it
# (any MALLOC_*_ variable does that, here its default trim threshold). The Node's own settings
# keep freed memory for reuse (fedgrid_server/memory.py), which RSS cannot tell from holding it.
GLIBC_ALLOCATOR = {"MALLOC_TRIM_THRESHOLD_": str(128 * 1024)}


@dataclass
class RunningNode(ServerProcess):
    name: ClassVar[str] = "Node"

    data_dir: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    backend: str = "sqlite"
    # Every process started for this Node, restarts included, shared by all of them: whoever
    # started the first stops them all (a restarted Node is a new object the test may drop).
    lineage: list[RunningNode] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.lineage.append(self)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def kill(self) -> None:
        """kill -9: no chance to flush or clean up, as in a crash."""
        self.stop(signal.SIGKILL)

    def restart(self) -> RunningNode:
        """Start again on the same port, data directory and database."""
        return _launch(self.args, self.env, self.data_dir, self.port, self.admin_token,
                       lineage=self.lineage)

    def stop_all(self) -> None:
        """Stop this process and every restart of it (the newest first)."""
        for node in reversed(self.lineage):
            node.stop()


def start_node(*, data_dir: Path, database_url: str | None = None, extra_args=(),
               admin_token: str = ADMIN_TOKEN, wait: bool = True,
               env: dict[str, str] | None = None) -> RunningNode:
    """A Node process; `wait=False` returns before it is healthy (start several at once, then
    `wait_healthy` each). `env`: variables to add to its environment."""
    env = {**server_env(os.environ, drop=("GRID_ADMIN_TOKEN",), database_url=database_url),
           **(env or {})}
    args = ["--host", "127.0.0.1", "--data-dir", str(data_dir), *extra_args]
    if admin_token:
        # --flag=value: a generated token may start with "-", which argparse would take for a flag.
        args += [f"--admin-token={admin_token}"]
    return _launch(args, env, data_dir, free_port(), admin_token, wait)


def _launch(args, env, data_dir: Path, port: int, admin_token: str,
            wait: bool = True, lineage: list[RunningNode] | None = None) -> RunningNode:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"node-{port}.log"
    process = launch("fedgrid_node", ["--port", str(port), *args], env=env, log_path=log_path)
    node = RunningNode(
        url=f"http://127.0.0.1:{port}", port=port, process=process, log_path=log_path,
        admin_token=admin_token, data_dir=data_dir, args=list(args), env=env,
        **({"lineage": lineage} if lineage is not None else {}),
    )
    if wait:
        wait_healthy(node)
    return node


def leader_of(nodes) -> RunningNode | None:
    """The one replica (--cluster) that says it leads, or None while there is not exactly one;
    replicas that do not answer (killed) are passed over."""
    import requests

    leaders = []
    for node in nodes:
        try:
            if requests.get(f"{node.url}/status", timeout=5).json()["replica"]["leader"]:
                leaders.append(node)
        except requests.RequestException:
            continue
    return leaders[0] if len(leaders) == 1 else None
