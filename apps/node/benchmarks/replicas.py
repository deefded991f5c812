"""Node replicas on one PostgreSQL: reports/s and cycle-request latency with 1 and 2 replicas,
and what each report and request costs every process, so the scaling to many machines can be
worked out on paper.

For N in REPLICAS, N `fedgrid-node --cluster` processes share a throw-away PostgreSQL database
(FEDGRID_TEST_POSTGRES_URL). They host report_ingest.py's ~1 MiB model with a goal not reached
during the run, and CLIENTS concurrent devices send ~1 MiB diffs to the replicas round-robin
(straight to each replica's port: no load balancer). Printed per N:

- reports/s, p50/p99 latency, and how long after the last acknowledgement the leader had folded
  every report (it folds the reports the others stored: cycles/cluster.py);
- CPU per report, from /proc: each replica, PostgreSQL (the backends serving this database; and
  every postgres process, WAL writer and checkpointer included, which other users of the server
  inflate), and this client;
- how busy the model's cycle row lock was (every report takes it: a probe tries it with NOWAIT
  every few milliseconds), i.e. the part of a report that no number of replicas parallelises;
- with 2 replicas, a second batch sent only to the follower: what a follower spends storing a
  report and what the leader spends reading it back and folding it, measured apart;
- cycle-requests on a full model (each one answered `cycle_full`, the figures committed) spread
  over the replicas: closed-loop capacity (`rate` below), then open loops at
  each OFFERED rate for SECONDS (its `open_loop`: latency from each request's scheduled moment),
  with CPU per request.

First, the same run's references: report_ingest.py's bare server (gevent + Flask, no database)
at the same concurrency, and what PostgreSQL alone spends to insert one diff, with the column's
default storage and uncompressed (STORAGE EXTERNAL). At the end: the ratios 2 replicas /
1 replica, and the bound on reports/s for k machines that each run one replica, from the
measured costs.

This machine has 2 cores: the replicas, PostgreSQL and this client compete for them, so the
rates measured here do not show what 2 machines would do; the per-report costs are what to
extrapolate with.

    .venv/bin/python apps/node/benchmarks/replicas.py [--reports 160] [--clients 16]
        [--requests 1200] [--cr-clients 8] [--offered 100,300] [--seconds 10]
        [--replicas 1,2] [--diff-storage default|external]

About three minutes at the defaults; a quick run: --reports 80 --clients 8 --requests 400
--seconds 4. Traffic stays on 127.0.0.1. --diff-storage external is a what-if: the diffs'
column set to STORAGE EXTERNAL in the throw-away database.
"""

from __future__ import annotations

import argparse
import itertools
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

# Siblings of this script (its folder is on sys.path when it runs): the same model, load and
# measures as the single-Node benchmarks.
from report_ingest import (
    BareServer,
    cpu_seconds,
    drive,
    host_unreached,
    one_mib_model,
    rss_bytes,
    take_places,
)

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from tests.support.api_client import HttpApi  # noqa: E402
from tests.support.databases import make_database_url  # noqa: E402
from tests.support.models import logistic_regression  # noqa: E402


# Closed and open loops through `requests` sessions, each call to the next replica in turn (the
# single-Node benchmark's http_load.py drives one address from raw sockets).
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
from tests.support.node_process import RunningNode, start_node  # noqa: E402

WARM_UP = 20  # reports sent before measuring: connections, pools, caches
IDLE_CPU = 0.03  # a leader using less than this share of a core has folded what it was sent


# ----------------------------------------------------------------------------- CPU accounting

def process_cpu(pids) -> dict[int, float]:
    """CPU seconds so far of each of `pids` still alive."""
    seconds = {}
    for pid in pids:
        try:
            seconds[pid] = cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
    return seconds


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@dataclass
class Fleet:
    """N replicas of one deployment on one throw-away PostgreSQL database."""

    nodes: list[RunningNode]
    database_url: str
    leader: int = 0
    control: psycopg.Connection = field(init=False)
    # This benchmark's own backends (the control connection's, the lock probes'): not the
    # replicas' cost.
    ours: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.control = psycopg.connect(self.database_url, autocommit=True)
        self.ours.add(self.control.info.backend_pid)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def backends(self) -> list[int]:
        """The PostgreSQL backends serving this database (the replicas' pools and listeners)."""
        return [pid for (pid,) in self.control.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            if pid not in self.ours]

    def open_cycle(self, name: str) -> int:
        return self.control.execute(
            "SELECT c.id FROM cycles c JOIN processes p ON p.id = c.process_id "
            "WHERE p.name = %s AND c.status = 'open'", (name,)).fetchone()[0]

    def snapshot(self) -> dict:
        return {"at": time.perf_counter(),
                "replicas": [cpu_seconds(node.process.pid) for node in self.nodes],
                "backends": process_cpu(self.backends()),
                "postgres": process_cpu(set(postgres_pids()) - self.ours),
                "client": sum(os.times()[:2])}

    @staticmethod
    def spent(before: dict, after: dict) -> dict:
        """CPU seconds spent between two snapshots (a backend started meanwhile counts whole)."""
        def grown(start: dict[int, float], end: dict[int, float]) -> float:
            return sum(seconds - start.get(pid, 0.0) for pid, seconds in end.items())

        return {"seconds": after["at"] - before["at"],
                "replicas": [b - a for a, b in zip(before["replicas"], after["replicas"],
                                                   strict=True)],
                "backends": grown(before["backends"], after["backends"]),
                "postgres": grown(before["postgres"], after["postgres"]),
                "client": after["client"] - before["client"]}

    def wait_folded(self, timeout: float = 120.0) -> float:
        """Seconds until the leader is idle again: it has folded every report the others stored
        (no figure says so; its CPU does)."""
        pid = self.nodes[self.leader].process.pid
        started = time.perf_counter()
        last = cpu_seconds(pid)
        while time.perf_counter() - started < timeout:
            time.sleep(0.5)
            now = cpu_seconds(pid)
            if now - last < IDLE_CPU * 0.5:
                return max(0.0, time.perf_counter() - started - 0.5)
            last = now
        raise RuntimeError(f"the leader was still busy {timeout:.0f} s after the last report")

    def log_problems(self) -> tuple[list[str], list[str]]:
        """Tracebacks and errors in the replicas' logs, with the lines after each; warnings."""
        problems, warnings = [], []
        for node in self.nodes:
            lines = node.log().splitlines()
            for index, text in enumerate(lines):
                if "Traceback" in text or " ERROR " in text or " CRITICAL " in text:
                    problems.append(f"replica :{node.port}: " + "\n    ".join(
                        lines[index:index + 25]))
                elif " WARNING " in text:
                    warnings.append(f"replica :{node.port}: {text}")
        return problems, warnings

    def stop(self, keep_logs: bool = False) -> None:
        self.control.close()
        for node in self.nodes:
            node.stop()
            if keep_logs:
                print(f"  replica :{node.port}'s log: {node.log_path}", flush=True)
            else:
                shutil.rmtree(node.data_dir, ignore_errors=True)


def start_fleet(count: int, database_url: str) -> Fleet:
    nodes = []
    for _ in range(count):
        # Same database, same --id and admin token (start_node's): replicas of one deployment.
        nodes.append(start_node(data_dir=Path(tempfile.mkdtemp()), database_url=database_url,
                                extra_args=["--cluster", "--id", "deployment"]))
    fleet = Fleet(nodes, database_url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        leading = [index for index, node in enumerate(nodes)
                   if requests.get(f"{node.url}/status", timeout=5).json()["replica"]["leader"]]
        if len(leading) == 1:
            fleet.leader = leading[0]
            return fleet
        time.sleep(0.1)
    fleet.stop()
    raise RuntimeError("no single leader among the replicas after 30 s")


class RowLockProbe:
    """How much of the time a cycle's row lock is held: a thread tries it with NOWAIT every
    `interval` seconds on a connection of its own and counts the tries that find it taken."""

    def __init__(self, fleet: Fleet, cycle_id: int, interval: float = 0.005) -> None:
        self.fleet, self.cycle_id, self.interval = fleet, cycle_id, interval
        self.tries = self.busy = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._connection: psycopg.Connection | None = None

    def __enter__(self) -> RowLockProbe:
        self._connection = psycopg.connect(self.fleet.database_url)
        self.fleet.ours.add(self._connection.info.backend_pid)
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()
        self._connection.close()

    @property
    def share(self) -> float:
        return self.busy / self.tries if self.tries else 0.0

    def _run(self) -> None:
        connection = self._connection
        while not self._stop.wait(self.interval):
            try:
                connection.execute("SELECT 1 FROM cycles WHERE id = %s FOR UPDATE NOWAIT",
                                   (self.cycle_id,))
            except psycopg.errors.LockNotAvailable:
                self.busy += 1
            finally:
                connection.rollback()  # hold it no longer than the one query
            self.tries += 1


# ----------------------------------------------------------------------------- one fleet

def per(spent_seconds: float, count: int) -> float:
    """Milliseconds per item."""
    return spent_seconds / count * 1000 if count else float("nan")


def report_phase(fleet: Fleet, urls: list[str], places, diff: bytes, clients: int,
                 cycle_id: int) -> dict:
    before = fleet.snapshot()
    with RowLockProbe(fleet, cycle_id) as probe:
        result = drive(urls, places, diff, clients)
        result["lock_share"] = probe.share
    result["fold_lag"] = fleet.wait_folded()
    result["cpu"] = Fleet.spent(before, fleet.snapshot())
    result["count"] = len(places)
    return result


def print_reports(label: str, fleet: Fleet, result: dict, receivers: list[int]) -> None:
    """`receivers`: how many of the reports each replica took."""
    cpu, count = result["cpu"], result["count"]
    print(f"  {label}: {result['rate']:6.1f} reports/s, p50 {result['p50'] * 1000:5.0f} ms, "
          f"p99 {result['p99'] * 1000:5.0f} ms; leader folded all {result['fold_lag']:.1f} s "
          f"after the last acknowledgement", flush=True)
    for index, spent in enumerate(cpu["replicas"]):
        role = "leader  " if index == fleet.leader else "follower"
        took = receivers[index]
        print(f"    {role} :{fleet.nodes[index].port}: took {took:3d}, CPU {spent:5.2f} s = "
              f"{per(spent, took):5.1f} ms per report it took, {per(spent, count):5.1f} ms per "
              f"report of the run", flush=True)
    print(f"    PostgreSQL: this database's backends {per(cpu['backends'], count):5.1f} ms/report,"
          f" all postgres processes {per(cpu['postgres'], count):5.1f} ms/report; client "
          f"{per(cpu['client'], count):5.1f} ms/report; cycle row lock held "
          f"{result['lock_share'] * 100:.0f} % of the run = "
          f"{per(result['lock_share'] * result['seconds'], count):.1f} ms per report", flush=True)


def postgres_alone(diff: bytes, inserts: int = 20) -> None:
    """The database's own cost of storing one diff, from a lone connection (no Node, no lock),
    with the column's default storage (PostgreSQL tries to compress values over 2 KiB; a diff
    of float32 noise does not compress, but the attempt runs) and with STORAGE EXTERNAL."""
    database = make_database_url("postgresql", Path(tempfile.gettempdir()))
    try:
        with psycopg.connect(database.url, autocommit=True) as connection:
            backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]
            figures = []
            for storage in ("EXTENDED", "EXTERNAL"):
                table = f"diffs_{storage.lower()}"
                connection.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, data bytea)")
                connection.execute(f"ALTER TABLE {table} ALTER COLUMN data SET STORAGE {storage}")
                connection.execute(f"INSERT INTO {table} (data) VALUES (%s)", (diff,))
                cpu, started = cpu_seconds(backend), time.perf_counter()
                for _ in range(inserts):
                    connection.execute(f"INSERT INTO {table} (data) VALUES (%s)", (diff,))
                wall = time.perf_counter() - started
                stored = connection.execute(
                    f"SELECT pg_column_size(data) FROM {table} LIMIT 1").fetchone()[0]
                figures.append(f"{storage.lower()} {per(cpu_seconds(backend) - cpu, inserts):.1f} "
                               f"ms CPU, {per(wall, inserts):.1f} ms wall, stored "
                               f"{stored / len(diff):.2f} of its size")
        print("PostgreSQL alone, one diff inserted and committed: " + "; ".join(figures),
              flush=True)
    finally:
        database.drop()


def measure_fleet(count: int, args, compiled, checkpoint, diff: bytes) -> dict:
    # The throw-away database lives on the server; the path is only SQLite's.
    database = make_database_url("postgresql", Path(tempfile.gettempdir()))
    figures: dict = {"problems": []}
    fleet = start_fleet(count, database.url)
    try:
        urls = fleet.urls
        one_device = max(4, args.reports // 4)
        follower_only = args.reports // 2 if count > 1 else 0
        total = WARM_UP + args.reports + one_device + follower_only
        print(f"{count} replica(s): leader :{fleet.nodes[fleet.leader].port}, ports "
              f"{', '.join(str(node.port) for node in fleet.nodes)}", flush=True)
        if args.diff_storage == "external":
            # What-if, not what the Node does: store diffs uncompressed (see postgres_alone).
            fleet.control.execute(
                "ALTER TABLE report_diffs ALTER COLUMN data SET STORAGE EXTERNAL")
        host_unreached(urls[0], fleet.nodes[0].admin_token, "ingest", total, checkpoint,
                       compiled)
        places = take_places(urls, "ingest", total)
        cycle_id = fleet.open_cycle("ingest")
        drive(urls, places[:WARM_UP], diff, 4)
        fleet.wait_folded()
        rss_before = [rss_bytes(node.process.pid) for node in fleet.nodes]

        batch = places[WARM_UP:WARM_UP + args.reports]
        spread = report_phase(fleet, urls, batch, diff, args.clients, cycle_id)
        receivers = [len(range(index, len(batch), count)) for index in range(count)]
        print_reports(f"{args.clients} devices round-robin", fleet, spread, receivers)
        figures["spread"] = spread
        # One device at a time: nothing queues for the row lock or the cores, so the lock's
        # share of the run is the time one report holds it, without contention.
        single = places[WARM_UP + args.reports:WARM_UP + args.reports + one_device]
        lone = report_phase(fleet, urls, single, diff, 1, cycle_id)
        print_reports("1 device round-robin", fleet, lone,
                      [len(range(index, len(single), count)) for index in range(count)])
        figures["one_device"] = lone
        if follower_only:
            follower = next(i for i in range(count) if i != fleet.leader)
            alone = places[WARM_UP + args.reports + one_device:]
            only = report_phase(fleet, [urls[follower]], alone, diff, args.clients, cycle_id)
            taken = [len(alone) if index == follower else 0 for index in range(count)]
            print_reports(f"{args.clients} devices, every report to the follower", fleet, only,
                          taken)
            figures["follower_only"] = only
            figures["follower"] = follower
        figures["leader"] = fleet.leader
        rss_after = [rss_bytes(node.process.pid) for node in fleet.nodes]
        memory = zip(fleet.nodes, rss_before, rss_after, strict=True)
        print("    RSS " + ", ".join(f":{node.port} {a / 2**20:.0f} -> {b / 2**20:.0f} MiB"
                                     for node, a, b in memory), flush=True)
        figures.update(cycle_requests(fleet, args))
        problems, warnings = fleet.log_problems()
        figures["problems"] = problems
        for problem in problems:
            print(f"  LOG PROBLEM {problem}", flush=True)
        print(f"  replicas' logs: {len(problems)} tracebacks or ERROR lines, {len(warnings)} "
              f"warnings{': ' + warnings[0] if warnings else ''}", flush=True)
    finally:
        fleet.stop(keep_logs=bool(figures["problems"]))
        database.drop()
    return figures


def cycle_requests(fleet: Fleet, args) -> dict:
    """Rejections on a model whose only place is taken, spread round-robin over the replicas."""
    urls = fleet.urls
    api = HttpApi(urls[0], fleet.nodes[0].admin_token)
    plan, start = logistic_regression()
    api.call("host-training", {"name": "full", "version": "1", "client_config": {},
                               "server_config": {"max_diffs": 1, "max_workers": 1,
                                                 "cycle_length": 3600}},
             blobs={"model": start, "plans/training_plan": plan}, admin=True)
    holder = api.call("authenticate", {"model_name": "full"}).body["worker_id"]
    api.call("cycle-request", {"worker_id": holder, "model": "full", "version": "1"})
    worker = api.call("authenticate", {"model_name": "full"}).body["worker_id"]
    request = {"worker_id": worker, "model": "full", "version": "1"}
    turn = itertools.count()
    unexpected: list[str] = []

    def rejected(session: requests.Session) -> None:
        url = urls[next(turn) % len(urls)]
        response = session.post(url + "/model-centric/cycle-request", json=request, timeout=60)
        if response.status_code != 200 or response.json().get("reason") != "cycle_full":
            unexpected.append(f"{url}: {response.status_code} {response.text[:300]}")
            raise RuntimeError(unexpected[-1])

    cycle_id = fleet.open_cycle("full")
    rate(args.cr_clients, args.cr_clients * 20, rejected)  # warm-up
    before = fleet.snapshot()
    with RowLockProbe(fleet, cycle_id) as probe:
        closed = rate(args.cr_clients, args.requests, rejected)
        closed_lock = probe.share
    closed_cpu = Fleet.spent(before, fleet.snapshot())
    answered = args.requests // args.cr_clients * args.cr_clients
    replicas = ", ".join(f"{per(spent, answered):.2f}" for spent in closed_cpu["replicas"])
    print(f"  cycle-request, closed loop, {args.cr_clients} devices: {closed:.0f} rejections/s; "
          f"CPU ms per request: replicas {replicas}, PostgreSQL backends "
          f"{per(closed_cpu['backends'], answered):.2f}; cycle row lock held "
          f"{closed_lock * 100:.0f} % = {per(closed_lock * closed_cpu['seconds'], answered):.2f}"
          f" ms per request", flush=True)
    loops = {}
    for offered in args.offered:
        before = fleet.snapshot()
        with RowLockProbe(fleet, cycle_id) as probe:
            loop = open_loop(offered, args.seconds, rejected)
            loop["lock"] = probe.share
        loop["cpu"] = Fleet.spent(before, fleet.snapshot())
        loops[offered] = loop
        sent = int(offered * args.seconds)
        replicas = ", ".join(f"{per(spent, sent):.2f}" for spent in loop["cpu"]["replicas"])
        print(f"  cycle-request, open loop at {offered:.0f}/s for {args.seconds:.0f} s: "
              f"{loop['answered']:.0f} answered/s, p50 {loop['p50'] * 1000:.1f} ms, p99 "
              f"{loop['p99'] * 1000:.1f} ms, {loop['failures']} failed; CPU ms per request: "
              f"replicas {replicas}, PostgreSQL backends "
              f"{per(loop['cpu']['backends'], sent):.2f}; cycle row lock held "
              f"{loop['lock'] * 100:.0f} %", flush=True)
    for text in unexpected[:3]:
        print(f"  UNEXPECTED ANSWER {text}", flush=True)
    return {"closed": closed, "closed_cpu": closed_cpu, "closed_count": answered,
            "closed_lock": closed_lock, "loops": loops, "unexpected": unexpected}


# ----------------------------------------------------------------------------- the comparison

def ratio(two: float, one: float) -> str:
    return f"{two / one:.2f}" if one else "n/a"


def compare(one: dict, two: dict, bare: dict, health: float) -> None:
    s1, s2 = one["spread"], two["spread"]
    leader1 = s1["cpu"]["replicas"][one["leader"]] / s1["count"]
    leader2 = s2["cpu"]["replicas"][two["leader"]] / s2["count"]
    follower2 = s2["cpu"]["replicas"][two["follower"]] / s2["count"]
    rows: list[tuple[str, float, float, Callable[[float], str]]] = [
        ("reports/s", s1["rate"], s2["rate"], lambda v: f"{v:.1f}"),
        ("report p50 ms", s1["p50"] * 1000, s2["p50"] * 1000, lambda v: f"{v:.0f}"),
        ("report p99 ms", s1["p99"] * 1000, s2["p99"] * 1000, lambda v: f"{v:.0f}"),
        ("leader CPU ms per report of the run", leader1 * 1000, leader2 * 1000,
         lambda v: f"{v:.1f}"),
        ("all replicas' CPU ms per report", sum(s1["cpu"]["replicas"]) / s1["count"] * 1000,
         sum(s2["cpu"]["replicas"]) / s2["count"] * 1000, lambda v: f"{v:.1f}"),
        ("PostgreSQL backends CPU ms per report", per(s1["cpu"]["backends"], s1["count"]),
         per(s2["cpu"]["backends"], s2["count"]), lambda v: f"{v:.1f}"),
        ("cycle-request closed loop /s", one["closed"], two["closed"], lambda v: f"{v:.0f}"),
    ]
    for offered in one["loops"]:
        first, second = one["loops"][offered], two["loops"][offered]
        rows += [(f"cycle-request at {offered:.0f}/s: answered/s", first["answered"],
                  second["answered"], lambda v: f"{v:.0f}"),
                 (f"cycle-request at {offered:.0f}/s: p99 ms", first["p99"] * 1000,
                  second["p99"] * 1000, lambda v: f"{v:.1f}")]
    print("\n2 replicas / 1 replica (same run):", flush=True)
    for label, first, second, shown in rows:
        print(f"  {label:<40} {shown(first):>8} -> {shown(second):>8}  ratio "
              f"{ratio(second, first)}", flush=True)
    print(f"  (the 2-replica follower spent {follower2 * 1000:.1f} ms per report of the run)")
    print(f"  bare server (no database): {bare['rate']:.1f} reports/s; 1 replica "
          f"{ratio(s1['rate'], bare['rate'])} of it, 2 replicas {ratio(s2['rate'], bare['rate'])};"
          f" GET /health {health:.0f}/s, cycle-request closed loop 1 replica "
          f"{ratio(one['closed'], health)} of it, 2 replicas {ratio(two['closed'], health)}",
          flush=True)


def lock_hold(result: dict) -> float:
    """Seconds the cycle row lock was held per report (or request) of a phase."""
    return result["lock_share"] * result["seconds"] / result["count"]


def extrapolate(one: dict, two: dict) -> None:
    """The reports/s bound for k machines, one replica each, from the per-report costs."""
    s1, alone = one["spread"], two["follower_only"]
    # a: the leader, a report it took itself (receive, check, store, fold): 1 replica.
    own = s1["cpu"]["replicas"][one["leader"]] / s1["count"]
    # s: a follower, a report it took (receive, check, store); f: the leader, a report another
    # replica stored (read it back, decode, fold): the follower-only batch.
    store = alone["cpu"]["replicas"][two["follower"]] / alone["count"]
    fold = alone["cpu"]["replicas"][two["leader"]] / alone["count"]
    db_own = s1["cpu"]["backends"] / s1["count"]
    db_other = alone["cpu"]["backends"] / alone["count"]
    # h: one device at a time (1 replica), so the hold is a report's own, not time spent
    # waiting for a core while holding it; under load here it is longer (printed too).
    hold = lock_hold(one["one_device"])
    loaded = max(lock_hold(s1), lock_hold(two["spread"]))
    print("\nPer-report costs (CPU ms): leader, a report it took a = "
          f"{own * 1000:.1f}; follower, a report it took s = {store * 1000:.1f}; leader, folding "
          f"a report a follower stored f = {fold * 1000:.1f}; PostgreSQL backends, a report "
          f"taken by the leader db_a = {db_own * 1000:.1f}, by a follower (stored, read back) "
          f"db_f = {db_other * 1000:.1f}. Cycle row lock held per report h = {hold * 1000:.1f} ms "
          f"with one device ({loaded * 1000:.1f} ms under load on these 2 cores).", flush=True)
    print("Bound on one model's reports/s with k machines, one replica each, devices spread "
          "evenly: min(k / s [each follower's core], 1 / (a/k + f (k-1)/k) [the leader's core], "
          "P / (db_a/k + db_f (k-1)/k) [PostgreSQL, P cores], 1 / h [the cycle row lock])",
          flush=True)
    for k in (1, 2, 4, 8, 16, 32):
        followers = k / store if k > 1 else float("inf")
        leader = 1 / (own / k + fold * (k - 1) / k)
        database = 1 / (db_own / k + db_other * (k - 1) / k)
        bound = min(followers, leader, database, 1 / hold)
        print(f"  k={k:<2} followers {followers:6.0f}  leader {leader:5.0f}  PostgreSQL per core "
              f"{database:5.0f}  row lock {1 / hold:5.0f}  => {bound:5.0f} reports/s", flush=True)
    # cycle-requests: every replica does the same work; the row lock and PostgreSQL are shared.
    requests_cpu = two["closed_cpu"]
    replica = max(requests_cpu["replicas"]) * len(requests_cpu["replicas"]) / two["closed_count"]
    database = requests_cpu["backends"] / two["closed_count"]
    hold = min(one["closed_lock"] * one["closed_cpu"]["seconds"] / one["closed_count"],
               two["closed_lock"] * requests_cpu["seconds"] / two["closed_count"])
    print(f"Rejected cycle-requests (2 replicas, closed loop): c = {replica * 1000:.2f} CPU ms "
          f"per request on the replica that takes it, {database * 1000:.2f} ms on PostgreSQL, "
          f"row lock held {hold * 1000:.2f} ms (under load); bound min(k / c, P / db, 1 / h) = "
          + ", ".join(f"k={k}: {min(k / replica, 1 / database, 1 / hold):.0f}/s"
                      for k in (1, 2, 4, 8, 16)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=160,
                        help="reports spread over the replicas (2 replicas: half as many more "
                             "to the follower alone)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent reporting devices")
    parser.add_argument("--requests", type=int, default=1200,
                        help="cycle-requests in the closed loop")
    parser.add_argument("--cr-clients", type=int, default=8,
                        help="concurrent devices in the cycle-request closed loop")
    parser.add_argument("--offered", default="100,300",
                        help="open-loop cycle-requests per second, comma separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="open-loop duration")
    parser.add_argument("--replicas", default="1,2", help="replica counts, comma separated")
    parser.add_argument("--diff-storage", choices=("default", "external"), default="default",
                        help="external: set report_diffs.data to STORAGE EXTERNAL (uncompressed) "
                             "in the throw-away database before hosting; a what-if, the Node "
                             "itself leaves the default")
    args = parser.parse_args()
    args.offered = [float(offered) for offered in args.offered.split(",")]
    if not os.environ.get("FEDGRID_TEST_POSTGRES_URL"):
        sys.exit("replicas need PostgreSQL: set FEDGRID_TEST_POSTGRES_URL (make postgres)")
    counts = [int(count) for count in args.replicas.split(",")]

    compiled, checkpoint, diff = one_mib_model()
    print(f"diff: {len(diff) / 2**20:.2f} MiB; {args.reports} reports from {args.clients} "
          f"devices; cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}. The replicas, "
          f"PostgreSQL and this client share these cores: rates are this machine's, the "
          f"per-report costs are what to extrapolate with.", flush=True)
    server = BareServer()
    try:
        drive(server.url, [("w", "k")] * WARM_UP, diff, 4)
        bare = drive(server.url, [("w", "k")] * args.reports, diff, args.clients)

        def health(session: requests.Session) -> None:
            session.get(server.url + "/health", timeout=30).raise_for_status()

        health_rate = rate(args.cr_clients, args.requests, health)
    finally:
        server.stop()
    print(f"bare server: {bare['rate']:.1f} reports/s, p50 {bare['p50'] * 1000:.0f} ms, p99 "
          f"{bare['p99'] * 1000:.0f} ms; GET /health {health_rate:.0f}/s from "
          f"{args.cr_clients} devices", flush=True)

    postgres_alone(diff)
    figures = {count: measure_fleet(count, args, compiled, checkpoint, diff) for count in counts}
    if 1 in figures and 2 in figures:
        compare(figures[1], figures[2], bare, health_rate)
        extrapolate(figures[1], figures[2])


if __name__ == "__main__":
    main()
