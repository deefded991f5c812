"""cycle-request throughput through a real Node, against GET /health in the same run.

Every rejection is answered only once its count is committed (the selection figures survive a
`kill -9`); the figures of concurrent requests share commits (group commit, cycles/figures.py).
This prints rejected cycle-requests per second from CLIENTS concurrent devices on a model whose
only place is taken (the capacity: closed loop, each device asks again as soon as it is
answered), next to the rate of `GET /health` (no database, same clients, same HTTP stack) as the
baseline, and the ratio. Then an open loop: requests sent at a fixed OFFERED rate whatever the
answers' pace (as independent devices do) for SECONDS, and the latency percentiles counted from
each request's scheduled moment (so a Node that falls behind shows its queueing delay).

    .venv/bin/python apps/node/benchmarks/cycle_request_rate.py [--requests 1600] [--clients 8]
        [--offered 500] [--seconds 5] [--backends sqlite,postgresql] [--pg-driver pg8000]

SQLite always; PostgreSQL too (a throw-away database) when FEDGRID_TEST_POSTGRES_URL is set, as
`make bench` sets it.
"""

from __future__ import annotations

import argparse
import queue
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from tests.support.api_client import HttpApi  # noqa: E402
from tests.support.databases import database_backends, make_database_url  # noqa: E402
from tests.support.models import logistic_regression  # noqa: E402
from tests.support.node_process import start_node  # noqa: E402


def rate(clients: int, total: int, one_call) -> float:
    """Calls per second of `one_call(session)` from `clients` threads, `total` calls in all."""
    per_client = total // clients

    def run(_: int) -> None:
        with requests.Session() as session:
            for _ in range(per_client):
                one_call(session)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, range(clients)))
    return per_client * clients / (time.perf_counter() - started)


def open_loop(offered: float, seconds: float, one_call, threads: int = 64) -> dict:
    """Send `offered` calls per second for `seconds`, whatever the answers' pace; latencies from
    each call's scheduled moment."""
    due: queue.Queue = queue.Queue()
    latencies: list[float] = []
    failures = 0

    def serve() -> None:
        nonlocal failures
        with requests.Session() as session:
            while (scheduled := due.get()) is not None:
                try:
                    one_call(session)
                except Exception:
                    failures += 1
                latencies.append(time.perf_counter() - scheduled)

    workers = [threading.Thread(target=serve) for _ in range(threads)]
    for worker in workers:
        worker.start()
    total = int(offered * seconds)
    start = time.perf_counter()
    for index in range(total):
        moment = start + index / offered
        delay = moment - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due.put(moment)
    for _ in workers:
        due.put(None)
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {"answered": len(latencies) / elapsed, "failures": failures,
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


def measure(backend: str, clients: int, total: int, offered: float, seconds: float,
            pg_driver: str | None = None) -> None:
    data_dir = Path(tempfile.mkdtemp())
    database = make_database_url(backend, data_dir)
    url = database.url
    if url and pg_driver:
        url = url.replace("postgresql://", f"postgresql+{pg_driver}://", 1)
        backend = f"{backend}+{pg_driver}"
    node = start_node(data_dir=data_dir, database_url=url)
    try:
        api = HttpApi(node.url, node.admin_token)
        plan, checkpoint = logistic_regression()
        api.call("host-training", {"name": "bench", "version": "1", "client_config": {},
                                   "server_config": {"max_diffs": 1, "max_workers": 1,
                                                     "cycle_length": 3600}},
                 blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)
        holder = api.call("authenticate", {"model_name": "bench"}).body["worker_id"]
        api.call("cycle-request", {"worker_id": holder, "model": "bench", "version": "1"})
        worker = api.call("authenticate", {"model_name": "bench"}).body["worker_id"]
        request = {"worker_id": worker, "model": "bench", "version": "1"}

        def rejected(session: requests.Session) -> None:
            answer = session.post(node.url + "/model-centric/cycle-request", json=request).json()
            assert answer["reason"] == "cycle_full", answer

        def health(session: requests.Session) -> None:
            session.get(node.url + "/health").raise_for_status()

        rate(clients, clients * 20, rejected)  # warm-up: connections, caches
        baseline = rate(clients, total, health)
        measured = rate(clients, total, rejected)
        figures = api.call("cycles", {"name": "bench"}, admin=True).body["cycles"][0]
        print(f"cycle-request ({backend}, {clients} clients): {measured:.0f} rejections/s, "
              f"GET /health {baseline:.0f}/s, ratio {measured / baseline:.2f} "
              f"({figures['rejected']['cycle_full']} rejections counted)", flush=True)
        if offered:
            loop = open_loop(offered, seconds, rejected)
            print(f"cycle-request ({backend}) open loop at {offered:.0f}/s offered: "
                  f"{loop['answered']:.0f} answered/s, p50 {loop['p50'] * 1000:.1f} ms, "
                  f"p99 {loop['p99'] * 1000:.1f} ms, {loop['failures']} failed", flush=True)
    finally:
        node.stop()
        database.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1600)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--offered", type=float, default=500.0,
                        help="open-loop offered load, requests/s (0: skip)")
    parser.add_argument("--seconds", type=float, default=5.0, help="open-loop duration")
    parser.add_argument("--backends", default=",".join(database_backends()))
    parser.add_argument("--pg-driver", default=None,
                        help="the PostgreSQL driver the Node uses (psycopg, pg8000); default: "
                             "the one a plain postgresql:// URL gets")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        measure(backend, args.clients, args.requests, args.offered, args.seconds, args.pg_driver)


if __name__ == "__main__":
    main()
