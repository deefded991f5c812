"""cycle-request capacity of a real Node, against GET /health from the same load generator.

The load comes from `http_load.py` (keep-alive sockets with pre-built requests, several
processes), which offers more than the Node takes, so the figures measure the Node; the
`GET /health` rate from the same generator (no database, same HTTP stack) is the baseline, and
each figure is printed with its ratio to it.

- rejections: CONNECTIONS devices ask again as soon as they are answered (closed loop) on a model
  whose only place is taken: rejected `cycle_full`;
- acceptances: ACCEPTS devices of a model with a place for each ask once (closed loop), after
  CONNECTIONS others took a place (warm-up: the first requests after a hosting read the model's
  row and open pool connections);
- open loop: rejections sent at a fixed OFFERED rate whatever the answers' pace (as independent
  devices do) for SECONDS, latency percentiles counted from each request's scheduled moment (so a
  Node that falls behind shows its queueing delay).

    .venv/bin/python apps/node/benchmarks/cycle_request_rate.py [--requests 6000]
        [--connections 16] [--accepts 1000] [--offered 500] [--seconds 5] [--processes 2]
        [--backends sqlite,postgresql] [--pg-driver pg8000]

SQLite always; PostgreSQL too (a throw-away database) when FEDGRID_TEST_POSTGRES_URL is set, as
`make bench` sets it.

Figures on the 2-core development machine (other work running, so compare ratios), before and
after rejections were decided from memory (workers, model names and the open cycle's rows) and
places and counts were committed without waiting for the disk and answered after a shared flush,
run back to back:

    SQLite      GET /health 3899/s -> 3606/s; rejections 869/s (0.22) -> 3336/s (0.93);
                acceptances 478/s -> 1058/s; open loop 500/s p99 9.1 ms -> 5.9 ms
    PostgreSQL  GET /health 1976/s -> 1870/s; rejections 388/s (0.20) -> 3028/s (1.62);
                acceptances 305/s -> 531/s; open loop 500/s: fell behind (386/s, p99 1.5 s)
                -> 500/s, p99 10.0 ms

and before and after places were taken in memory and written in shared transactions
(cycles/place_writer.py), two pairs back to back (with the acceptances' warm-up):

    SQLite      acceptances 907/s, 802/s -> 2249/s, 3123/s
    PostgreSQL  acceptances 476/s, 356/s -> 1657/s, 1985/s
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_load import LoadResult, closed_loop, http_request, open_loop  # noqa: E402

from tests.support.api_client import HttpApi  # noqa: E402
from tests.support.databases import database_backends, make_database_url  # noqa: E402
from tests.support.models import logistic_regression  # noqa: E402
from tests.support.node_process import start_node  # noqa: E402

CYCLE_REQUEST = "/model-centric/cycle-request"


def host(api: HttpApi, name: str, max_workers: int) -> None:
    plan, checkpoint = logistic_regression()
    api.call("host-training", {"name": name, "version": "1", "client_config": {},
                               "server_config": {"max_diffs": max_workers,
                                                 "max_workers": max_workers,
                                                 "cycle_length": 3600}},
             blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)


def cycle_request(worker: str, name: str) -> bytes:
    body = json.dumps({"worker_id": worker, "model": name, "version": "1"}).encode()
    return http_request("POST", CYCLE_REQUEST, body)


def checked(result: LoadResult, what: str) -> LoadResult:
    if result.failures:
        raise SystemExit(f"{what}: {result.failures} unexpected answers, the first: "
                         f"{result.first_failure!r}")
    return result


def measure(backend: str, args) -> None:
    data_dir = Path(tempfile.mkdtemp())
    database = make_database_url(backend, data_dir)
    url = database.url
    if url and args.pg_driver:
        url = url.replace("postgresql://", f"postgresql+{args.pg_driver}://", 1)
        backend = f"{backend}+{args.pg_driver}"
    node = start_node(data_dir=data_dir, database_url=url)
    address = ("127.0.0.1", node.port)
    load = {"processes": args.processes}
    try:
        api = HttpApi(node.url, node.admin_token)
        host(api, "bench", 1)
        holder = api.call("authenticate", {"model_name": "bench"}).body["worker_id"]
        api.call("cycle-request", {"worker_id": holder, "model": "bench", "version": "1"})
        worker = api.call("authenticate", {"model_name": "bench"}).body["worker_id"]
        rejected = cycle_request(worker, "bench")
        health = http_request("GET", "/health")

        # warm-up: connections, caches, the first cycle's figures
        checked(closed_loop(address, rejected, expect=b'"cycle_full"', total=400,
                            connections=args.connections, **load), "warm-up")
        baseline = checked(closed_loop(address, health, expect=b"ok", total=args.requests,
                                       connections=args.connections, **load), "GET /health")
        rejections = checked(closed_loop(address, rejected, expect=b'"cycle_full"',
                                         total=args.requests, connections=args.connections,
                                         **load), "rejections")
        figures = api.call("cycles", {"name": "bench"}, admin=True).body["cycles"][0]
        print(f"cycle-request ({backend}, {args.connections} connections, "
              f"{args.processes} load processes): GET /health {baseline.rate:.0f}/s; "
              f"rejections {rejections.rate:.0f}/s (ratio {rejections.rate / baseline.rate:.2f}, "
              f"p99 {rejections.percentile(0.99) * 1000:.1f} ms; "
              f"{figures['rejected']['cycle_full']} rejections counted)", flush=True)
        if args.accepts:
            warm = args.connections
            host(api, "bench-accept", warm + args.accepts)
            workers = [api.call("authenticate", {"model_name": "bench-accept"}).body["worker_id"]
                       for _ in range(warm + args.accepts)]
            # warm-up: the first requests after a hosting read the model from the database (its
            # name is not in memory yet) on pool connections opened for them
            checked(closed_loop(address, [cycle_request(w, "bench-accept") for w in workers[:warm]],
                                expect=b'"accepted"', connections=args.connections, **load),
                    "acceptances' warm-up")
            accepts = checked(closed_loop(address, [cycle_request(w, "bench-accept")
                                                    for w in workers[warm:]],
                                          expect=b'"accepted"', connections=args.connections,
                                          **load), "acceptances")
            print(f"cycle-request ({backend}): acceptances {accepts.rate:.0f}/s "
                  f"(ratio {accepts.rate / baseline.rate:.2f}, "
                  f"p99 {accepts.percentile(0.99) * 1000:.1f} ms)", flush=True)
        if args.offered:
            loop = checked(open_loop(address, rejected, expect=b'"cycle_full"',
                                     offered=args.offered, seconds=args.seconds, **load),
                           "open loop")
            print(f"cycle-request ({backend}) open loop at {args.offered:.0f}/s offered: "
                  f"{loop.rate:.0f} answered/s, p50 {loop.percentile(0.5) * 1000:.1f} ms, "
                  f"p99 {loop.percentile(0.99) * 1000:.1f} ms", flush=True)
    finally:
        node.stop()
        database.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000,
                        help="closed loop: requests per measurement")
    parser.add_argument("--connections", type=int, default=16,
                        help="closed loop: keep-alive connections (devices asking at once)")
    parser.add_argument("--accepts", type=int, default=1000,
                        help="devices accepted in the acceptance measurement (0: skip)")
    parser.add_argument("--offered", type=float, default=500.0,
                        help="open-loop offered load, requests/s (0: skip)")
    parser.add_argument("--seconds", type=float, default=5.0, help="open-loop duration")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--backends", default=",".join(database_backends()))
    parser.add_argument("--pg-driver", default=None,
                        help="the PostgreSQL driver the Node uses (psycopg, pg8000); default: "
                             "the one a plain postgresql:// URL gets")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        measure(backend, args)


if __name__ == "__main__":
    main()
