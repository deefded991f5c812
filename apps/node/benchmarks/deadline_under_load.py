"""How late cycles close after their deadline while devices flood the Node, against the same
Node's lateness with no load, in the same run.

Hosts a model whose cycles last CYCLE seconds and never reach their goal (they close at the
deadline, abandoned for want of a quorum), then measures `closed_at - deadline` of CYCLES cycles
twice: idle, and with CLIENTS threads sending cycle-requests as fast as the Node answers (each a
new device, so every request goes through selection). Before the engine checked the deadline
under the cycle's lock, a queue of requests in front of the watcher delayed the close by the
queue's length (seconds on PostgreSQL under 1,000 devices).

    .venv/bin/python apps/node/benchmarks/deadline_under_load.py [--clients 64] [--cycles 4]

SQLite always; PostgreSQL too when FEDGRID_TEST_POSTGRES_URL is set (as `make bench` sets it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from tests.support.api_client import HttpApi  # noqa: E402
from tests.support.databases import database_backends, make_database_url  # noqa: E402
from tests.support.models import logistic_regression  # noqa: E402
from tests.support.node_process import start_node  # noqa: E402

CYCLE = 2.0


def lateness(api: HttpApi, name: str, cycles: int, timeout: float) -> list[float]:
    """Seconds from deadline to close of the first `cycles` closed cycles of `name`."""
    waited = threading.Event()
    deadline = timeout
    while deadline > 0:
        closed = [c for c in api.call("cycles", {"name": name}, admin=True).body["cycles"]
                  if c["status"] != "open"]
        if len(closed) >= cycles:
            return [(datetime.fromisoformat(c["closed_at"]) - datetime.fromisoformat(c["deadline"]))
                    .total_seconds() for c in closed[:cycles]]
        waited.wait(0.2)
        deadline -= 0.2
    raise SystemExit(f"{name}: fewer than {cycles} cycles closed within {timeout} s")


def host(api: HttpApi, name: str) -> None:
    plan, checkpoint = logistic_regression()
    answer = api.call("host-training", {
        "name": name, "version": "1", "client_config": {},
        "server_config": {"max_diffs": 1000, "min_diffs": 1,
                          "quorum_policy": "abandon", "cycle_length": CYCLE}},
        blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)
    assert answer.status == 200, answer.body


def flood(url: str, name: str, stop: threading.Event, counts: list[int]) -> None:
    with requests.Session() as session:
        while not stop.is_set():
            worker = session.post(f"{url}/model-centric/authenticate",
                                  json={"model_name": name}, timeout=120).json()["worker_id"]
            session.post(f"{url}/model-centric/cycle-request",
                         json={"worker_id": worker, "model": name}, timeout=120)
            counts.append(1)


def measure(backend: str, clients: int, cycles: int) -> None:
    data_dir = Path(tempfile.mkdtemp())
    database = make_database_url(backend, data_dir)
    node = start_node(data_dir=data_dir, database_url=database.url)
    try:
        api = HttpApi(node.url, node.admin_token)
        host(api, "idle")
        idle = lateness(api, "idle", cycles, timeout=cycles * CYCLE + 60)
        host(api, "flooded")
        stop, counts = threading.Event(), []
        threads = [threading.Thread(target=flood, args=(node.url, "flooded", stop, counts),
                                    daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        try:
            flooded = lateness(api, "flooded", cycles, timeout=cycles * CYCLE + 120)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        print(f"{backend:10s}  idle: worst {max(idle) * 1000:7.1f} ms late  |  {clients} clients "
              f"flooding ({len(counts)} requests): worst {max(flooded) * 1000:7.1f} ms late, "
              f"each {', '.join(f'{x * 1000:.0f}' for x in flooded)} ms")
    finally:
        node.stop()
        database.drop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--cycles", type=int, default=4)
    args = parser.parse_args()
    print(f"cycle close lateness (closed_at - deadline), {CYCLE:g} s cycles that close at their "
          "deadline; idle baseline in the same run")
    for backend in database_backends():
        measure(backend, args.clients, args.cycles)


if __name__ == "__main__":
    main()
