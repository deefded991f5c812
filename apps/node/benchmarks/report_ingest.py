"""Report ingest end to end over HTTP, durability on, and the Node's memory as reports pile up.

Starts a real Node (SQLite, synchronous=FULL: every acknowledged report is on disk), hosts a
~1 MiB model whose goal is never reached, then sends REPORTS reports of a ~1 MiB diff from
CLIENTS concurrent devices. Prints reports/s and MB/s, and the Node's resident memory growth
in model sizes (the target: 1,000 reports grow it by no more than a few model sizes, because
diffs are folded into a running sum and stored, never held).

    .venv/bin/python apps/node/benchmarks/report_ingest.py [--reports 1000] [--clients 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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
from tests.support.node_process import start_node  # noqa: E402


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    torch.manual_seed(0)
    compiled = compile_plan(torch.nn.Linear(1024, 256), loss="cross_entropy",
                            example_batch=(np.zeros((2, 1024), np.float32), np.zeros(2, np.int64)))
    checkpoint = compiled.checkpoint()
    model_bytes = sum(v.nbytes for v in checkpoint.values())
    rng = np.random.default_rng(0)
    diff = tensors.encode({n: (rng.standard_normal(v.shape) * 1e-3).astype(np.float32)
                           for n, v in checkpoint.items()})

    with tempfile.TemporaryDirectory() as data_dir:
        node = start_node(data_dir=Path(data_dir))
        admin = {"Authorization": f"Bearer {node.admin_token}"}
        try:
            hosted = requests.post(
                f"{node.url}/model-centric/host-training",
                data={"name": "ingest", "version": "1",
                      "server_config": f'{{"max_diffs": {args.reports + 1}, "cycle_length": 3600}}'},
                files={"model": tensors.encode(checkpoint), "plans[training_plan]": compiled.to_bytes()},
                headers=admin, timeout=60)
            hosted.raise_for_status()
            session = requests.Session()
            places = []
            for _ in range(args.reports):
                worker = session.post(f"{node.url}/model-centric/authenticate",
                                      json={"model_name": "ingest"}, timeout=30).json()["worker_id"]
                answer = session.post(f"{node.url}/model-centric/cycle-request",
                                      json={"worker_id": worker, "model": "ingest"}, timeout=30).json()
                places.append((worker, answer["request_key"]))

            def send(place):
                worker, key = place
                with requests.post(f"{node.url}/model-centric/report",
                                   params={"worker_id": worker, "request_key": key, "num_samples": 10},
                                   data=diff, headers={"Content-Type": "application/octet-stream"},
                                   timeout=60) as response:
                    response.raise_for_status()

            warmup = min(20, args.reports // 10)
            for place in places[:warmup]:
                send(place)
            rss_before = rss_bytes(node.process.pid)
            start = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(send, places[warmup:]))
            seconds = time.perf_counter() - start
            rss_after = rss_bytes(node.process.pid)
            sent = args.reports - warmup
            print(f"model / diff size: {model_bytes / 2**20:.2f} MiB, {len(diff) / 2**20:.2f} MiB")
            print(f"reports: {sent} from {args.clients} concurrent clients, durability on (SQLite FULL)")
            print(f"ingest: {sent / seconds:.1f} reports/s, {sent * len(diff) / seconds / 1e6:.1f} MB/s")
            print(f"Node RSS: {rss_before / 2**20:.1f} MiB -> {rss_after / 2**20:.1f} MiB, "
                  f"growth {(rss_after - rss_before) / model_bytes:+.2f} model sizes "
                  f"over {sent} reports (target: a few)")
        finally:
            node.stop()


if __name__ == "__main__":
    main()
