"""Time-to-accuracy of devices in participate() beside a driver that schedules the same protocol.

Setting: the zoo's digits MLP, a real Node process, the docs' example settings (max_diffs 5,
cycle_length 600; max_workers left at the Node's default), E=5 local epochs, B=10, 10 devices with
an IID split of 80% of scikit-learn's digits; the other 20% is the held-out test set.

- participate: every device is a thread in ``job.participate(shard)`` with its own Client; the
  Node decides who trains when (devices turned away long-poll, then sleep the Node's timeout).
- driver: one thread that, per cycle, picks exactly max_diffs devices and for each requests a
  place, trains and reports, with no sleeping: the schedule no participate() fleet can beat
  without training in parallel.

Both train the same hosted model from the same initial checkpoint for the same number of cycles;
afterwards every checkpoint is evaluated on the test set. The time to the target accuracy is from
the start of the run to the close of the first cycle whose checkpoint reached it (the Node's
``closed_at``). Run from the repository root:

    .venv/bin/python clients/python/benchmarks/time_to_accuracy.py

Each mode runs ``--repeats`` times (alternating which goes first) on one Node, each run on a freshly
hosted copy of the model. Prints, per run, the cycle and seconds where the target was reached, the
seconds for all the cycles, how the cycles closed (goal or deadline), the assignments dropped
(over-selection: a cycle closes at its goal while other accepted devices still train) and the
requests rejected; then the ratios participate / driver of the medians, which should be close to 1
(above 1 by what the fleet's start-up and dropped work cost; below 1 where its parallel training
outruns the one-thread driver). A cycle that waited out its 600 s deadline would show at once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fedgrid import Admin, Client
from fedgrid.simulate import digits_shards, evaluate
from fedgrid_plans.executor import PlanExecutor
from fedgrid_plans.plan_file import Plan

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from tests.support.node_process import start_node  # noqa: E402

ADMIN_TOKEN = "benchmark-admin-token"


@dataclass
class Run:
    mode: str
    started: float  # epoch seconds, just before the first device asked
    devices_done: bool = True  # every device returned (participate: told training_finished)
    cycles: list[dict] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)  # per cycle, of the checkpoint it made
    errors: list[str] = field(default_factory=list)

    def closed_after(self, cycle: dict) -> float:
        closed = datetime.fromisoformat(cycle["closed_at"].replace("Z", "+00:00"))
        return closed.replace(tzinfo=UTC).timestamp() - self.started

    def seconds(self, cycles: int) -> float | None:
        """Until the close of the last of ``cycles`` cycles; None if they did not all complete."""
        return self.closed_after(self.cycles[-1]) if len(self.cycles) == cycles else None

    def at_target(self, target: float) -> tuple[int, float] | None:
        """(cycle, seconds) of the first cycle whose checkpoint reached ``target``."""
        for cycle, accuracy in zip(self.cycles, self.accuracies, strict=True):
            if accuracy >= target:
                return cycle["sequence"], self.closed_after(cycle)
        return None


def host(admin: Admin, compiled, name: str, args) -> None:
    admin.host_training(compiled, name, "1.0",
                        client_config={"batch_size": args.batch_size, "epochs": args.epochs},
                        server_config={"max_diffs": args.max_diffs, "cycle_length": 600,
                                       "num_cycles": args.cycles})


def run_participate(url: str, name: str, shards, args) -> Run:
    clients = [Client(url) for _ in shards]
    jobs = [client.new_job(name) for client in clients]
    run = Run("participate", time.time())
    errors: list[str] = []

    def device(index: int) -> None:
        try:
            jobs[index].participate(shards[index])
        except Exception as exc:  # noqa: BLE001 (printed with the figures)
            errors.append(f"device {index}: {exc!r}")

    threads = [threading.Thread(target=device, args=(i,), daemon=True) for i in range(len(shards))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + args.max_seconds
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    run.devices_done = not any(thread.is_alive() for thread in threads)
    for job in jobs:
        job.stop()
    for client in clients:
        client.close()
    run.errors = errors
    return run


def run_driver(url: str, name: str, shards, args) -> Run:
    rng = np.random.default_rng(args.seed)
    with Client(url) as client:
        jobs = [client.new_job(name) for _ in shards]
        run = Run("driver", time.time())
        for _ in range(args.cycles):
            for index in rng.choice(len(shards), size=args.max_diffs, replace=False):
                job = jobs[int(index)]
                # A wait costs nothing when a place is free; it saves a 503 retry while the Node
                # opens the next cycle.
                assignment = job.request(wait=job.default_wait())
                assignment.report(assignment.train(shards[int(index)], progress=False))
    return run


def evaluate_run(run: Run, admin: Admin, name: str, executor, test) -> None:
    run.cycles = [c for c in admin.cycles(name) if c["status"] == "completed"]
    for cycle in run.cycles:
        parameters = admin.retrieve_model(name, checkpoint=cycle["new_checkpoint"])
        run.accuracies.append(evaluate(executor, parameters, *test))


def describe(run: Run, args) -> str:
    reached = run.at_target(args.target)
    shown = (f"{args.target:.0%} at cycle {reached[0]} after {reached[1]:.2f} s" if reached
             else f"{args.target:.0%} not reached within {len(run.cycles)} cycles")
    closes = Counter(c.get("reason") for c in run.cycles)
    seconds = run.seconds(args.cycles)
    total = (f"{len(run.cycles)} cycles in {seconds:.2f} s" if seconds is not None
             else f"only {len(run.cycles)} of {args.cycles} cycles within {args.max_seconds:g} s")
    best = max(run.accuracies) if run.accuracies else float("nan")
    dropped = sum(c.get("dropped") or 0 for c in run.cycles)
    rejected = sum(sum((c.get("rejected") or {}).values()) for c in run.cycles)
    line = (f"{run.mode:<12} {shown}; {total} "
            f"({', '.join(f'{n} {reason}' for reason, n in sorted(closes.items()))}); "
            f"best {best:.4f}; {dropped} assignments dropped, {rejected} requests rejected")
    if not run.devices_done:
        line += f"; devices still in participate() after {args.max_seconds:g} s"
    if run.errors:
        line += f"; {len(run.errors)} device error(s), first: {run.errors[0]}"
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--max-diffs", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=900.0,
                        help="give up on the participate fleet after this long")
    parser.add_argument("--database-url", default=None,
                        help="the Node's database (default: SQLite in a temporary folder)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each mode (alternating which goes first); medians compared")
    parser.add_argument("--transport", choices=("http", "ws"), default="http",
                        help="the participate devices' transport (the driver uses HTTP)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from fedgrid_plans.zoo import compile_zoo_model

    compiled = compile_zoo_model("digits_mlp", seed=args.seed)
    executor = PlanExecutor(Plan.from_bytes(compiled.to_bytes()))
    shards, test = digits_shards((64,), args.devices, "iid", args.seed)
    initial = evaluate(executor, compiled.checkpoint(), *test)
    print(f"digits_mlp, {sum(len(x) for x, _ in shards)} training / {len(test[1])} test digits; "
          f"{args.devices} devices, max_diffs {args.max_diffs}, cycle_length 600, "
          f"E={args.epochs}, B={args.batch_size}, {args.cycles} cycles, target {args.target:.0%}; "
          f"initial accuracy {initial:.4f}; {os.cpu_count()} CPUs", flush=True)

    runs: dict[str, list[Run]] = {"participate": [], "driver": []}
    runners = {"participate": run_participate, "driver": run_driver}
    with tempfile.TemporaryDirectory(prefix="fedgrid-bench-") as folder:
        node = start_node(data_dir=Path(folder), database_url=args.database_url,
                          extra_args=("--log-level", "WARNING"), admin_token=ADMIN_TOKEN)
        url = node.url
        try:
            with Admin(url, ADMIN_TOKEN) as admin:
                for repeat in range(args.repeats):
                    # Alternate which mode goes first, so neither always meets a cold Node.
                    order = ("participate", "driver") if repeat % 2 == 0 else ("driver", "participate")
                    for mode in order:
                        name = f"tta-{mode}-{repeat}"
                        host(admin, compiled, name, args)
                        node_url = url if mode == "driver" or args.transport == "http" else \
                            url.replace("http://", "ws://") + "/ws"
                        run = runners[mode](node_url, name, shards, args)
                        evaluate_run(run, admin, name, executor, test)
                        runs[mode].append(run)
                        print(describe(run, args), flush=True)
        finally:
            node.stop()

    def median(values: list[float | None]) -> float | None:
        return None if not values or None in values else statistics.median(values)

    ratios = []
    to_target = {mode: median([(r.at_target(args.target) or (None, None))[1] for r in mode_runs])
                 for mode, mode_runs in runs.items()}
    if None not in to_target.values():
        ratios.append(f"time to {args.target:.0%} {to_target['participate']:.2f} s / "
                      f"{to_target['driver']:.2f} s = "
                      f"{to_target['participate'] / to_target['driver']:.2f}")
    all_cycles = {mode: median([r.seconds(args.cycles) for r in mode_runs])
                  for mode, mode_runs in runs.items()}
    if None not in all_cycles.values():
        ratios.append(f"time for {args.cycles} cycles {all_cycles['participate']:.2f} s / "
                      f"{all_cycles['driver']:.2f} s = "
                      f"{all_cycles['participate'] / all_cycles['driver']:.2f}")
    print(f"participate / driver (medians of {args.repeats}): "
          f"{'; '.join(ratios) or 'no ratio (a run did not finish or reach the target)'}",
          flush=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
