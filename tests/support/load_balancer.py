"""A real HAProxy (Debian's `haproxy` package) in front of Node processes on loopback.

It runs the deployment's own configuration, deploy/haproxy/haproxy.cfg, so that the tests check the
settings operators get. Only what ties that file to Docker is rewritten (`loopback_config`): the
`bind` addresses become loopback ports, the `server-template` that finds replicas through Docker's
DNS becomes one `server` line per upstream URL with the same options, and the `resolvers` section
goes. A missing piece (the frontend, the stats page, the template line) fails loudly instead of
starting a balancer that is not the deployed one.

HAProxy runs in the foreground (`-db`) as a child process, without root, and logs to the file
`log()` reads (the config logs to stdout).
"""

from __future__ import annotations

import csv
import io
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from fedgrid_server.testing import free_port, wait_for

__all__ = ["DEPLOYED_CONFIG", "INSTALL_HINT", "LoadBalancer", "duration_seconds", "loopback_config",
           "parse_config"]

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED_CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
INSTALL_HINT = "run scripts/install-system-deps.sh (as root) to install Debian's haproxy"
# The Docker-only server options: replicas are found by DNS there, here they are given.
DNS_OPTIONS = ("resolvers", "init-addr", "resolve-prefer")
# Container ports in the deployed file, by the section that binds them.
BIND_SECTIONS = {"frontend fedgrid": "port", "frontend stats": "stats_port"}


def parse_config(text: str) -> dict[str, list[list[str]]]:
    """The directives of each section (``"defaults"``, ``"backend nodes"``, ...) as word lists,
    comments left out."""
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if not line[0].isspace():
            current = sections.setdefault(" ".join(words[:2]), [])
        else:
            current.append(words)
    return sections


def duration_seconds(value: str) -> float:
    """An HAProxy time (``500ms``, ``2s``, ``1h``; milliseconds without a unit) in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
    number = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(number) * units.get(value[len(number):], 1e-3)


def loopback_config(text: str, *, port: int, stats_port: int, upstreams: list[str]) -> str:
    """The deployed configuration, bound to loopback ports, balancing over ``upstreams``
    (``http://127.0.0.1:PORT`` URLs)."""
    addresses = {"port": port, "stats_port": stats_port}
    lines: list[str] = []
    section = ""
    rewritten: set[str] = set()
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not stripped.startswith("#"):
            section = " ".join(stripped.split()[:2])
        if section.startswith("resolvers "):
            continue
        words = stripped.split()
        if words[:1] == ["bind"] and section in BIND_SECTIONS:
            line = f"    bind 127.0.0.1:{addresses[BIND_SECTIONS[section]]}"
            rewritten.add(section)
        elif words[:1] == ["server-template"]:
            # server-template <prefix> <count> <fqdn>:<port> [options...]
            prefix, options = words[1], words[4:]
            kept = []
            while options:
                option = options.pop(0)
                if option in DNS_OPTIONS:
                    options.pop(0)  # its argument
                else:
                    kept.append(option)
            for number, url in enumerate(upstreams, start=1):
                parts = urlsplit(url)
                lines.append(f"    server {prefix}{number} {parts.hostname}:{parts.port} "
                             + " ".join(kept))
            rewritten.add("server-template")
            continue
        lines.append(line)
    missing = {*BIND_SECTIONS, "server-template"} - rewritten
    assert not missing, f"{DEPLOYED_CONFIG} has no {sorted(missing)} to run on loopback"
    return "\n".join(lines) + "\n"


class LoadBalancer:
    """HAProxy on a loopback port in front of ``upstreams``; stop it with ``stop()`` or use it as a
    context manager. ``url`` is what devices would be given; ``stats_url`` its stats page."""

    def __init__(self, upstreams: list[str], *, config: Path = DEPLOYED_CONFIG,
                 work_dir: Path | None = None, port: int | None = None) -> None:
        executable = shutil.which("haproxy") or "/usr/sbin/haproxy"
        assert Path(executable).exists(), f"haproxy is not installed; {INSTALL_HINT}"
        self.upstreams = list(upstreams)
        self.port, self.stats_port = port or free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stats_url = f"http://127.0.0.1:{self.stats_port}/stats"
        self._own_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="haproxy-")) if work_dir is None else work_dir
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.work_dir / "haproxy.cfg"
        self.config_path.write_text(loopback_config(
            config.read_text(), port=self.port, stats_port=self.stats_port,
            upstreams=self.upstreams))
        self.log_path = self.work_dir / "haproxy.log"
        checked = subprocess.run([executable, "-c", "-f", str(self.config_path)],
                                 capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([executable, "-db", "-f", str(self.config_path)],
                                            stdout=log, stderr=subprocess.STDOUT)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _accepting(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"haproxy exited with {self.process.returncode}:\n{self.log()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def server_states(self) -> dict[str, dict[str, str]]:
        """Each upstream server's row of the stats CSV (``status``: UP, DOWN, ...; ``check_status``;
        ``stot``: requests sent to it; ``addr``), by server name (``node1``, ``node2``, ...)."""
        answer = requests.get(self.stats_url + ";csv", timeout=5)
        answer.raise_for_status()
        rows = csv.DictReader(io.StringIO(answer.text.lstrip("# ")))
        return {row["svname"]: row for row in rows
                if row["pxname"] == "nodes" and row["svname"] not in ("FRONTEND", "BACKEND")}

    def server_for(self, upstream: str) -> str:
        """The server name HAProxy gives the upstream URL."""
        return f"node{self.upstreams.index(upstream) + 1}"

    def wait_ready(self, timeout: float = 30) -> None:
        """Until the port accepts connections and every upstream has passed a health check."""
        wait_for(self._accepting, timeout=timeout, what="haproxy to accept connections")
        wait_for(lambda: all(row["status"] == "UP" and row["check_status"] == "L7OK"
                             for row in self.server_states().values()),
                 timeout=timeout, what="every upstream to pass its health check")

    def wait_status(self, upstream: str, status: str, timeout: float = 10) -> float:
        """Until HAProxy's health checks put ``upstream`` in ``status`` (UP or DOWN); returns the
        seconds it took."""
        started = time.monotonic()
        name = self.server_for(upstream)
        wait_for(lambda: self.server_states()[name]["status"] == status, timeout=timeout,
                 interval=0.05, what=f"{upstream} ({name}) to be {status}")
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LoadBalancer:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
