"""Report ingest end to end over HTTP, durability on, against a bare transport in the same run.

The baseline is a bare gevent pywsgi + Flask server (a subprocess, no database) that reads the
same ~1 MiB report bodies and answers 200: what the HTTP stack alone allows on this machine,
measured right before each level of each Node (the machine is shared: a baseline taken minutes
earlier would compare two different machines), with its CPU per report beside the Node's. Then
a real Node on SQLite and, when FEDGRID_TEST_POSTGRES_URL is set, on PostgreSQL (a throw-away
database) hosts a ~1 MiB model whose goal is never reached, and REPORTS reports of a ~1 MiB diff
arrive from each number of concurrent devices in CLIENTS. Either way every acknowledged report's
diff and row are on disk before its answer (docs/node.md, Durability). A third line of
reference: how many such diffs per second the disk takes as fsync'd appends to a plain file, the
ceiling of any durable ingest here. For each: reports/s, p50/p99 latency, the ratio to the bare
rate at the same concurrency, and the Node's resident memory after each level (diffs are folded
into a running sum and stored, never held: it must stay flat in the number of reports; it does
grow with the devices in flight, whose bodies are held while read, and with the freed heap the
allocator keeps for reuse, fedgrid_server/memory.py). `--clients 16,16,64,64` shows both: equal
levels end at the same RSS.

    .venv/bin/python apps/node/benchmarks/report_ingest.py [--reports 160] [--clients 1,16,64]
        [--repeats 3] [--backends sqlite,postgresql] [--pg-driver psycopg|pg8000]

Each level is measured `--repeats` times, each time right after its own baseline, and the
median ratio is printed with the range: a level lasts under a second here, and one measurement
moves by ±10 %.

The machine is shared: absolute figures are noisy, the ratios to the same run's baseline are
what to compare.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import torch

from fedgrid_plans import tensors
from fedgrid_plans.compiler import compile_plan

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from tests.support.databases import database_backends, make_database_url  # noqa: E402
from tests.support.node_process import free_port, start_node  # noqa: E402

# The bare transport: the Node's own server stack (gevent pywsgi with TCP_NODELAY, Flask, the
# Node's request class), no database, no protocol checks.
BARE_SERVER = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import sys
    from flask import Flask, jsonify, request
    from fedgrid_server.bodies import init_body_limit
    from fedgrid_server.memory import tune_malloc
    from fedgrid_server.server import HardenedWSGIServer
    tune_malloc()  # the Node's allocator settings too
    app = Flask("bare")
    # The Node's request class and body limit: the same body reading as the Node's.
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    init_body_limit(app)

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.post("/model-centric/report")
    def report():
        body = request.get_data(cache=False)
        return jsonify(status="success", size=len(body))

    HardenedWSGIServer(("127.0.0.1", int(sys.argv[1])), app, log=None).serve_forever()
""")


class BareServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(self.port)])
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.url + "/health", timeout=1).raise_for_status()
                return
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def disk_ceiling(diff: bytes, count: int, batch: int = 16) -> float:
    """Diffs per second this disk takes as fsync'd appends to a plain file, `batch` per fsync:
    what any durable ingest of such reports can reach at best here (the bare server writes
    nothing)."""
    with tempfile.TemporaryDirectory() as directory:
        fd = os.open(Path(directory) / "diffs", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            started = time.perf_counter()
            for index in range(count):
                os.write(fd, diff)
                if index % batch == batch - 1:
                    os.fsync(fd)
            os.fsync(fd)
            return count / (time.perf_counter() - started)
        finally:
            os.close(fd)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(urls: str | list[str], places: list[tuple[str, str]], diff: bytes,
          clients: int) -> dict:
    """Send one report per place from `clients` threads, the i-th place's to urls[i % len(urls)]
    (one Node, or replicas round-robin); reports/s and latency percentiles."""
    urls = [urls] if isinstance(urls, str) else urls
    latencies: list[float] = []
    sessions: dict[int, requests.Session] = {}

    def send(index: int) -> None:
        session = sessions.setdefault(threading.get_ident(), requests.Session())
        worker, key = places[index]
        url = urls[index % len(urls)]
        started = time.perf_counter()
        response = session.post(f"{url}/model-centric/report",
                                params={"worker_id": worker, "request_key": key, "num_samples": 10},
                                data=diff, headers={"Content-Type": "application/octet-stream"},
                                timeout=120)
        if response.status_code != 200:  # say what the Node answered, not only the status
            raise RuntimeError(f"report to {url} answered {response.status_code}: "
                               f"{response.text[:500]}")
        latencies.append(time.perf_counter() - started)

    # This load generator's own cyclic garbage collector off while it measures: its heap holds
    # torch and the model (millions of objects), and a full collection stopped every client
    # thread for ~0.4 s in the middle of a level (its latency and rate, not the server's). The
    # requests' garbage is freed by reference counting; the collector runs between levels.
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, range(len(places))))
        seconds = time.perf_counter() - started
    finally:
        gc.enable()
    for session in sessions.values():
        session.close()
    latencies.sort()
    return {"rate": len(places) / seconds, "seconds": seconds,
            "p50": latencies[len(latencies) // 2],
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


def one_mib_model():
    """The ingest model (a 1024×256 linear layer: ~1 MiB of float32), its compiled plan, its
    checkpoint and a ~1 MiB diff of it: the same every run."""
    torch.manual_seed(0)
    compiled = compile_plan(torch.nn.Linear(1024, 256), loss="cross_entropy",
                            example_batch=(np.zeros((2, 1024), np.float32), np.zeros(2, np.int64)))
    checkpoint = compiled.checkpoint()
    rng = np.random.default_rng(0)
    diff = tensors.encode({n: (rng.standard_normal(v.shape) * 1e-3).astype(np.float32)
                           for n, v in checkpoint.items()})
    return compiled, checkpoint, diff


def host_unreached(url: str, admin_token: str, name: str, places: int, checkpoint,
                   compiled) -> None:
    """Host `name` with room for `places` reports and an hour-long cycle: its goal is not reached
    during a run, so every report is stored and folded and none waits on a close."""
    hosted = requests.post(
        f"{url}/model-centric/host-training",
        data={"name": name, "version": "1",
              "server_config": (f'{{"max_diffs": {places + 1}, "max_workers": {places + 1},'
                                f' "cycle_length": 3600}}')},
        files={"model": tensors.encode(checkpoint), "plans[training_plan]": compiled.to_bytes()},
        headers={"Authorization": f"Bearer {admin_token}"}, timeout=60)
    hosted.raise_for_status()


def take_places(urls: str | list[str], name: str, count: int) -> list[tuple[str, str]]:
    """`count` devices authenticate and take a place in `name`'s open cycle, the i-th through
    urls[i % len(urls)]; their (worker_id, request_key)."""
    urls = [urls] if isinstance(urls, str) else urls
    places = []
    with requests.Session() as session:
        for index in range(count):
            url = urls[index % len(urls)]
            worker = session.post(f"{url}/model-centric/authenticate", json={"model_name": name},
                                  timeout=30).json()["worker_id"]
            answer = session.post(f"{url}/model-centric/cycle-request",
                                  json={"worker_id": worker, "model": name}, timeout=30).json()
            if answer.get("status") != "accepted":
                raise RuntimeError(f"cycle-request to {url} answered {answer}")
            places.append((worker, answer["request_key"]))
    return places


def line(label: str, clients: int, result: dict, bare: dict | None) -> str:
    ratio = f", ratio {result['rate'] / bare['rate']:.2f} of bare" if bare else ""
    return (f"  {label:<12} {clients:>3} devices: {result['rate']:7.1f} reports/s, "
            f"p50 {result['p50'] * 1000:6.0f} ms, p99 {result['p99'] * 1000:6.0f} ms{ratio}")


def measure_node(label: str, database_url: str | None, clients_list: list[int], reports: int,
                 repeats: int, checkpoint, compiled, diff: bytes,
                 bare_server: BareServer) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        node = start_node(data_dir=Path(data_dir), database_url=database_url)
        total = reports * len(clients_list) * repeats + 20
        try:
            host_unreached(node.url, node.admin_token, "ingest", total, checkpoint, compiled)
            places = iter(take_places(node.url, "ingest", total))
            drive(node.url, [next(places) for _ in range(20)], diff, 4)  # warm-up
            rss_before = rss_bytes(node.process.pid)
            for clients in clients_list:
                ratios = []
                for _ in range(repeats):
                    # The baseline right before, at the same concurrency: the machine is
                    # shared, and a baseline taken minutes earlier compares two machines.
                    bare_cpu = cpu_seconds(bare_server.process.pid)
                    bare = drive(bare_server.url, [("w", "k")] * reports, diff, clients)
                    bare_ms = (cpu_seconds(bare_server.process.pid) - bare_cpu) / reports * 1000
                    print(line("bare", clients, bare, None)
                          + f", server CPU {bare_ms:.1f} ms/report", flush=True)
                    cpu_before = cpu_seconds(node.process.pid)
                    result = drive(node.url, [next(places) for _ in range(reports)], diff,
                                   clients)
                    cpu_ms = (cpu_seconds(node.process.pid) - cpu_before) / reports * 1000
                    ratios.append(result["rate"] / bare["rate"])
                    print(line(label, clients, result, bare)
                          + f", Node CPU {cpu_ms:.1f} ms/report, RSS "
                          f"{rss_bytes(node.process.pid) / 2**20:.0f} MiB", flush=True)
                if repeats > 1:
                    print(f"  {label:<12} {clients:>3} devices: ratio to bare, median of "
                          f"{repeats}: {statistics.median(ratios):.2f} (from {min(ratios):.2f} "
                          f"to {max(ratios):.2f})", flush=True)
            rss_after = rss_bytes(node.process.pid)
            sent = total - 20
            model_bytes = sum(v.nbytes for v in checkpoint.values())
            print(f"  {label:<12} Node RSS {rss_before / 2**20:.0f} MiB -> {rss_after / 2**20:.0f} "
                  f"MiB over {sent} reports ({(rss_after - rss_before) / model_bytes:+.1f} model "
                  f"sizes; it follows the devices in flight, not the reports: compare the levels "
                  f"of equal concurrency above)", flush=True)
        finally:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=160, help="reports per concurrency level")
    parser.add_argument("--clients", default="1,16,64", help="concurrency levels, comma separated")
    parser.add_argument("--repeats", type=int, default=3,
                        help="measurements of each level, each right after its own baseline; "
                             "the median ratio is printed (a level lasts well under a second on "
                             "this machine, and one measurement moves by ±10 %%)")
    parser.add_argument("--backends", default=",".join(database_backends()))
    parser.add_argument("--pg-driver", default=None,
                        help="the PostgreSQL driver the Node uses (psycopg, pg8000); default: "
                             "the one a plain postgresql:// URL gets")
    args = parser.parse_args()
    if args.reports < 1 or args.repeats < 1:
        parser.error("--reports and --repeats must be at least 1")
    clients_list = [int(c) for c in args.clients.split(",")]

    compiled, checkpoint, diff = one_mib_model()
    print(f"diff: {len(diff) / 2**20:.2f} MiB; {args.reports} reports per level; "
          f"cpus: {os.cpu_count()}", flush=True)

    print(f"  {'disk':<12} fsync'd appends of the diff, 16 per fsync: "
          f"{disk_ceiling(diff, args.reports):7.1f} diffs/s (durable ingest's ceiling here)",
          flush=True)
    server = BareServer()
    try:
        drive(server.url, [("w", "k")] * 20, diff, 4)
        for backend in args.backends.split(","):
            if backend == "sqlite":
                measure_node("sqlite", None, clients_list, args.reports, args.repeats,
                             checkpoint, compiled, diff, server)
                continue
            database = make_database_url("postgresql", Path(tempfile.mkdtemp()))
            url = database.url
            if args.pg_driver:
                url = url.replace("postgresql://", f"postgresql+{args.pg_driver}://", 1)
            try:
                measure_node(f"pg {args.pg_driver or ''}".strip(), url, clients_list,
                             args.reports, args.repeats, checkpoint, compiled, diff, server)
            finally:
                try:
                    database.drop()
                except Exception as exc:  # the figures are printed; say what is left behind
                    print(f"could not drop the throw-away database {database.name}: {exc}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
