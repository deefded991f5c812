"""The Node's CPU per report of a ~1 MiB diff over WebSocket, against the same report over HTTP,
measured in the same run on the same Node.

Starts a real Node (SQLite), hosts a ~1 MiB model whose goal is never reached, then sends REPORTS
reports over HTTP and REPORTS over one WebSocket each (binary frames, as the SDKs send them), one at
a time, and reads the Node process's CPU time (user + system, /proc/<pid>/stat) around each batch.
Prints milliseconds of Node CPU per report for each transport and the ratio (target: WebSocket
within 1.5x of HTTP).

    .venv/bin/python apps/node/benchmarks/ws_report_cost.py [--reports 200] [--diff-mib 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import requests
import torch
import websocket

from fedgrid_plans import tensors
from fedgrid_plans.compiler import compile_plan
from fedgrid_protocol.frames import encode_binary_frame

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from tests.support.node_process import start_node  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--diff-mib", type=float, default=1.0)
    args = parser.parse_args()

    torch.manual_seed(0)
    inputs = max(1, int(args.diff_mib * 2**20 / 4 / 256))
    compiled = compile_plan(torch.nn.Linear(inputs, 256), loss="cross_entropy",
                            example_batch=(np.zeros((2, inputs), np.float32), np.zeros(2, np.int64)))
    checkpoint = compiled.checkpoint()
    rng = np.random.default_rng(0)
    diff = tensors.encode({n: (rng.standard_normal(v.shape) * 1e-3).astype(np.float32)
                           for n, v in checkpoint.items()})
    warmup = 10
    total = 2 * (args.reports + warmup)

    with tempfile.TemporaryDirectory() as data_dir:
        node = start_node(data_dir=Path(data_dir))
        try:
            hosted = requests.post(
                f"{node.url}/model-centric/host-training",
                data={"name": "ws-cost", "version": "1",
                      "server_config": json.dumps({"max_diffs": total + 1, "max_workers": total + 1,
                                                   "cycle_length": 3600})},
                files={"model": tensors.encode(checkpoint), "plans[training_plan]": compiled.to_bytes()},
                headers={"Authorization": f"Bearer {node.admin_token}"}, timeout=60)
            hosted.raise_for_status()
            session = requests.Session()
            places = []
            for _ in range(total):
                worker = session.post(f"{node.url}/model-centric/authenticate",
                                      json={"model_name": "ws-cost"}, timeout=30).json()["worker_id"]
                answer = session.post(f"{node.url}/model-centric/cycle-request",
                                      json={"worker_id": worker, "model": "ws-cost"}, timeout=30).json()
                places.append((worker, answer["request_key"]))

            def over_http(place) -> None:
                worker, key = place
                answer = session.post(f"{node.url}/model-centric/report",
                                      params={"worker_id": worker, "request_key": key,
                                              "num_samples": 10},
                                      data=diff, headers={"Content-Type": "application/octet-stream"},
                                      timeout=60)
                answer.raise_for_status()

            ws = websocket.create_connection(node.ws_url, timeout=60)

            def over_ws(place) -> None:
                worker, key = place
                ws.send_binary(encode_binary_frame(
                    {"type": "model-centric/report", "request_id": key,
                     "data": {"worker_id": worker, "request_key": key, "num_samples": 10}},
                    {"diff": diff}))
                answer = json.loads(ws.recv())
                assert "error" not in answer["data"], answer

            figures = {}
            for name, send, batch in (("HTTP", over_http, places[: total // 2]),
                                      ("WebSocket", over_ws, places[total // 2 :])):
                for place in batch[:warmup]:
                    send(place)
                before = cpu_seconds(node.process.pid)
                for place in batch[warmup:]:
                    send(place)
                figures[name] = (cpu_seconds(node.process.pid) - before) / args.reports * 1000
            ws.close()
            print(f"diff: {len(diff) / 2**20:.2f} MiB, {args.reports} reports per transport, one at a time")
            for name, ms in figures.items():
                print(f"Node CPU per report over {name}: {ms:.1f} ms")
            print(f"WebSocket / HTTP Node CPU: {figures['WebSocket'] / figures['HTTP']:.2f}x "
                  f"(target <= 1.5x)")
        finally:
            node.stop()


if __name__ == "__main__":
    main()
