"""`make demo`: a Node, a hosted digits model, and a few simulated devices training it with FedAvg.

What happens:
1. a Node starts as a subprocess (`python -m fedgrid_node`) on a free port, with an embedded SQLite
   database in a temporary directory and an explicit admin token;
2. the researcher side of the SDK (`fedgrid.Admin`) compiles the zoo's digits MLP and hosts it;
3. six simulated devices, each with its own shard of scikit-learn's bundled digits, train it with
   the device side of the SDK for five cycles (four devices per cycle, 5 local epochs, batch 10);
   after each cycle the new checkpoint is evaluated on held-out digits with the plan's forward graph;
4. the Node's own per-cycle records and the checkpoint list are printed, and the Node is stopped.

Offline, about half a minute, exit status 0.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

DEVICES = 6
PER_CYCLE = 4
CYCLES = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_node(data_dir: Path, admin_token: str) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log_path = data_dir / "node.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "GRID_ADMIN_TOKEN")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fedgrid_node", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data_dir), f"--admin-token={admin_token}", "--id", "demo-node"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Node exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return process, url, log_path
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the Node did not start in 60 s:\n{log_path.read_text()}")


def stop_node(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def main() -> int:
    from fedgrid import Admin, FedgridError
    from fedgrid.simulate import simulate
    from fedgrid_plans.zoo import compile_zoo_model

    started = time.perf_counter()
    admin_token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="fedgrid-demo-") as folder:
        process, url, log_path = start_node(Path(folder), admin_token)
        try:
            print(f"Node running at {url} (SQLite in {folder})")
            compiled = compile_zoo_model("digits_mlp")
            print(f"compiled digits_mlp: {len(compiled.to_bytes())} byte plan, "
                  f"{sum(v.size for v in compiled.checkpoint().values())} parameters")
            print(f"{DEVICES} devices, {PER_CYCLE} per cycle, {CYCLES} cycles, E=5, B=10, FedAvg")
            result = simulate(
                url, admin_token, model=compiled, name="digits-demo", devices=DEVICES,
                per_cycle=PER_CYCLE, cycles=CYCLES, split="iid", epochs=5, batch_size=10,
                processes=0, seed=0, on_cycle=lambda record: print("  " + record.line(), flush=True),
            )
            print(f"test accuracy: {result.initial_test_accuracy:.4f} before training, "
                  f"{result.final_test_accuracy:.4f} after {len(result.records)} cycles")
            with Admin(url, admin_token) as admin:
                listing = admin.checkpoints(result.name, result.version)
                numbers = [c["number"] for c in listing["checkpoints"]]
                print(f"checkpoints on the Node: {numbers} (latest {listing['latest']})")
                try:
                    cycles = admin.cycles(result.name, result.version)
                except FedgridError:  # an older Node without the cycles listing: nothing to show
                    cycles = []
                for cycle in cycles:
                    if cycle["status"] == "completed":
                        loss = (cycle.get("client_metrics") or {}).get("loss", float("nan"))
                        print(f"  Node record: cycle {cycle['sequence']} {cycle['status']}, "
                              f"{cycle['reported']} reports, {cycle['num_samples']} samples, "
                              f"client loss {loss:.4f}")
        except Exception:
            print(f"demo failed; the Node's log:\n{log_path.read_text()}", file=sys.stderr)
            raise
        finally:
            code = stop_node(process)
        print(f"Node stopped (exit status {code}); demo took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
