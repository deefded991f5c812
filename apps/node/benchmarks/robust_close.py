"""What each aggregator costs at the close: the Node's memory and the close's time, same run.

Starts one real Node (SQLite), hosts the same ~1 MiB model once per rule — FedAvg's streaming
mean, norm bounding (streams), DP-FedAvg (streams), and the coordinate-wise median and trimmed
mean (keep the reports, combined at the close from the database) — and sends each REPORTS
reports of a 1 MiB diff; the last report reaches the goal and closes the cycle before it is
answered. For each rule it prints the Node's RSS before the cycle's reports, before the closing
report, and its peak during the close (the kernel's high-water mark, reset just before the
closing report via /proc/PID/clear_refs), and the close's time (`aggregation_seconds`).

The Node runs with glibc's own allocator settings (`MALLOC_TRIM_THRESHOLD_` set to glibc's
default, which makes the Node leave its allocator alone: fedgrid_server/memory.py), so that RSS
shows what a rule needs rather than what the tuned allocator keeps for reuse.

    .venv/bin/python apps/node/benchmarks/robust_close.py [--reports 100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
import torch

from fedgrid_plans import tensors
from fedgrid_plans.compiler import compile_plan

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from tests.support.node_process import start_node  # noqa: E402

# glibc's default trim threshold: the Node's allocator is left as glibc sets it (see above).
os.environ["MALLOC_TRIM_THRESHOLD_"] = str(128 * 1024)

RULES = {
    "fedavg (mean)": {},
    "norm_bound": {"norm_bound": 1.0},
    "dp-fedavg": {"differential_privacy": {"noise_multiplier": 1.0, "population": 100_000}},
    "median": {"aggregator": "median"},
    "trimmed_mean": {"aggregator": "trimmed_mean", "trim_fraction": 0.1},
}


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=100)
    args = parser.parse_args()

    torch.manual_seed(0)
    compiled = compile_plan(torch.nn.Linear(1024, 256), loss="cross_entropy",
                            example_batch=(np.zeros((2, 1024), np.float32), np.zeros(2, np.int64)))
    checkpoint = compiled.checkpoint()
    model_mib = sum(v.nbytes for v in checkpoint.values()) / 2**20
    rng = np.random.default_rng(0)
    diffs = [tensors.encode({n: (rng.standard_normal(v.shape) * 1e-3).astype(np.float32)
                             for n, v in checkpoint.items()}) for _ in range(8)]

    with tempfile.TemporaryDirectory() as data_dir:
        node = start_node(data_dir=Path(data_dir))
        pid = node.process.pid
        admin = {"Authorization": f"Bearer {node.admin_token}"}
        session = requests.Session()

        def post(path, **kwargs):
            answer = session.post(f"{node.url}/model-centric/{path}", timeout=120, **kwargs)
            answer.raise_for_status()
            return answer.json()

        print(f"model {model_mib:.2f} MiB, {args.reports} reports per cycle, SQLite, one Node")
        print(f"{'rule':<16}{'RSS before':>12}{'before close':>14}{'peak in close':>15}"
              f"{'close (s)':>11}")
        try:
            for rule, settings in RULES.items():
                name = rule.split()[0]
                config = {"max_diffs": args.reports, "cycle_length": 3600, **settings}
                requests.post(
                    f"{node.url}/model-centric/host-training",
                    data={"name": name, "version": "1", "server_config": json.dumps(config)},
                    files={"model": tensors.encode(checkpoint),
                           "plans[training_plan]": compiled.to_bytes()},
                    headers=admin, timeout=60).raise_for_status()
                places = []
                for _ in range(args.reports):
                    worker = post("authenticate", json={"model_name": name})["worker_id"]
                    answer = post("cycle-request", json={"worker_id": worker, "model": name})
                    places.append((worker, answer["request_key"]))
                start_rss = status_kib(pid, "VmRSS")

                def send(index, place):
                    worker, key = place
                    post("report", params={"worker_id": worker, "request_key": key,
                                           "num_samples": 10},
                         data=diffs[index % len(diffs)],
                         headers={"Content-Type": "application/octet-stream"})

                for index, place in enumerate(places[:-1]):
                    send(index, place)
                before_close = status_kib(pid, "VmRSS")
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to VmRSS
                started = time.perf_counter()
                send(len(places) - 1, places[-1])
                wall = time.perf_counter() - started
                peak = status_kib(pid, "VmHWM")
                cycles = session.get(f"{node.url}/model-centric/cycles", params={"name": name},
                                     headers=admin, timeout=60).json()["cycles"]
                assert cycles[0]["status"] == "completed", cycles[0]
                close = cycles[0]["aggregation_seconds"]
                print(f"{rule:<16}{start_rss / 1024:>9.1f} MiB{before_close / 1024:>10.1f} MiB"
                      f"{peak / 1024:>11.1f} MiB{close:>10.3f}  (last report answered in "
                      f"{wall:.3f} s; peak − before close = "
                      f"{(peak - before_close) / 1024 / model_mib:+.1f} model sizes)")
        finally:
            node.stop()


if __name__ == "__main__":
    main()
