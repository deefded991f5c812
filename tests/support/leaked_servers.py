"""Find the Node and Network processes a test started and left running.

A test that leaves its server running holds a port, a database and a core for the rest of the
suite, and on CI the machine is 2 cores: the root conftest fails such a test and kills what it
left. Read from /proc (no psutil): the suite runs on Linux only."""

from __future__ import annotations

import os
import signal
from pathlib import Path

# The server modules `fedgrid_server.testing.launch` runs with `python -m`.
SERVER_MODULES = ("fedgrid_node", "fedgrid_network")


def running_servers() -> dict[int, str]:
    """This process's live children that run a Fedgrid server: pid -> command line."""
    me = os.getpid()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it exited while we looked
            continue
        # stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after its ")".
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) != me or state == "Z":
            continue
        args = [part.decode(errors="replace") for part in cmdline if part]
        if any(module in args for module in SERVER_MODULES):
            found[int(entry.name)] = " ".join(args)
    return found


def kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
