"""Cycles-to-97% of FedAvg on digits (IID and non-IID) beside centralised training of the same model.

Setting (the issue's bar): the zoo's digits MLP (64 -> 32 -> 10), 20 simulated devices, 5 per
cycle, E=5 local epochs, B=10, the plan's learning rate, a real Node with its FedAvg, 80/20
train/test split of scikit-learn's bundled digits. Centralised: the same plan, the same learning
rate and batch size, trained with the same executor on the union of the devices' data, evaluated
after every epoch.

Run from the repository root:

    .venv/bin/python clients/python/benchmarks/learning_quality.py

Prints one line per setting: the cycle (or epoch) where the test accuracy first reached 95% and
97%, the best accuracy, and the local updates and examples it took, with ratios to centralised.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

from fedgrid.simulate import digits_shards, evaluate, simulate
from fedgrid_plans.executor import PlanExecutor, train
from fedgrid_plans.plan_file import Plan

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from tests.support.node_process import start_node  # noqa: E402

ADMIN_TOKEN = "benchmark-admin-token"


def centralised(compiled, *, epochs: int, batch_size: int, seed: int) -> list[float]:
    """Test accuracy after each epoch of plain minibatch SGD on all the devices' data."""
    plan = Plan.from_bytes(compiled.to_bytes())
    executor = PlanExecutor(plan)
    shards, (test_x, test_y) = digits_shards((64,), 20, "iid", seed)
    import numpy as np

    features = np.concatenate([x for x, _ in shards])
    labels = np.concatenate([y for _, y in shards])
    parameters = compiled.checkpoint()
    accuracies = []
    for epoch in range(epochs):
        result = train(executor, parameters, features, labels, batch_size=batch_size, epochs=1,
                       seed=seed + epoch)
        parameters = result.parameters
        accuracies.append(evaluate(executor, parameters, test_x, test_y))
    return accuracies


def first_at(values: list[float], threshold: float) -> int | None:
    return next((i + 1 for i, v in enumerate(values) if v >= threshold), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iid-cycles", type=int, default=100)
    parser.add_argument("--noniid-cycles", type=int, default=200)
    parser.add_argument("--central-epochs", type=int, default=60)
    parser.add_argument("--processes", type=int, default=0,
                        help="device processes (0 = threads in this process)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from fedgrid_plans.zoo import compile_zoo_model

    compiled = compile_zoo_model("digits_mlp", seed=args.seed)
    devices, per_cycle, local_epochs, batch = 20, 5, 5, 10
    shards, _ = digits_shards((64,), devices, "iid", args.seed)
    train_size = sum(len(x) for x, _ in shards)
    # Local updates in one cycle: 5 devices x E epochs x ceil(shard / B) batches.
    shard = train_size / devices
    updates_per_cycle = per_cycle * local_epochs * math.ceil(shard / batch)
    examples_per_cycle = per_cycle * local_epochs * shard
    updates_per_epoch = math.ceil(train_size / batch)

    print(f"digits_mlp, {train_size} training / {1797 - train_size} test digits; FedAvg: "
          f"{devices} devices, {per_cycle} per cycle, E={local_epochs}, B={batch}; "
          f"centralised: B={batch}, same learning rate", flush=True)
    started = time.perf_counter()
    central = centralised(compiled, epochs=args.central_epochs, batch_size=batch, seed=args.seed)
    central_seconds = time.perf_counter() - started
    central_97 = first_at(central, 0.97)
    rows = [("centralised", "epoch", central, updates_per_epoch, train_size, central_seconds)]

    with tempfile.TemporaryDirectory(prefix="fedgrid-bench-") as folder:
        node = start_node(data_dir=Path(folder), extra_args=("--log-level", "WARNING"),
                          admin_token=ADMIN_TOKEN)
        url = node.url
        try:
            for split, cycles in (("iid", args.iid_cycles), ("noniid", args.noniid_cycles)):
                started = time.perf_counter()
                result = simulate(url, ADMIN_TOKEN, model=compiled, devices=devices,
                                  per_cycle=per_cycle, cycles=cycles, split=split,
                                  epochs=local_epochs, batch_size=batch,
                                  processes=args.processes, seed=args.seed, target_accuracy=0.97)
                accuracies = [r.test_accuracy for r in result.records]
                rows.append((f"FedAvg {split}", "cycle", accuracies, updates_per_cycle,
                             examples_per_cycle, time.perf_counter() - started))
        finally:
            node.stop()

    central_updates = None if central_97 is None else central_97 * updates_per_epoch
    for label, unit, accuracies, updates, examples, seconds in rows:
        at95, at97 = first_at(accuracies, 0.95), first_at(accuracies, 0.97)
        shown97 = f"{unit} {at97}" if at97 else f"not within {len(accuracies)} {unit}s"
        line = (f"{label:<13} 95% at {unit} {at95}, 97%: {shown97}; best {max(accuracies):.4f}; "
                f"{seconds:.1f} s")
        if at97:
            line += f"; {at97 * updates} local updates, {at97 * examples:.0f} examples"
            if central_updates and unit == "cycle":
                line += f" ({at97 * updates / central_updates:.1f}x centralised updates)"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
