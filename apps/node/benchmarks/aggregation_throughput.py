"""Aggregation throughput: bytes of diff folded per second, against numpy on the same bytes.

Baselines, measured in the same run on the same 64 MiB float32 diff:
- "in-place sum": np.add(acc, diff, out=acc) in float32 — the least any fold must do (read the
  diff, read and write an accumulator); this is the memory-bandwidth limit the target refers to;
- "read-only sum": diff.sum() — pure read bandwidth, for context.
The Node's fold (float64, weighted, chunked, two pool threads) is timed through the same code path
the engine uses (`fold_many_off_hub`). Target: at least 50% of the in-place sum.

    .venv/bin/python apps/node/benchmarks/aggregation_throughput.py
"""

from __future__ import annotations

import time

import numpy as np

from fedgrid_node.cycles.aggregation import RunningWeightedSum
from fedgrid_node.cycles.off_hub import FOLD_THREADS, fold_many_off_hub

MIB = 1024 * 1024


def best_seconds(fn, repeats=7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    # A model of several tensors, 64 MiB in all (as a ~16M-parameter network's diff).
    shapes = {"conv": (64, 64, 3, 3), "fc1": (3136, 4096), "fc2": (4096, 768), "bias": (4096,)}
    diff = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
    nbytes = sum(v.nbytes for v in diff.values())
    spec = {n: (v.shape, v.dtype) for n, v in diff.items()}

    accumulators = {n: np.zeros_like(v) for n, v in diff.items()}
    in_place = best_seconds(lambda: [np.add(accumulators[n], diff[n], out=accumulators[n])
                                     for n in diff])
    read_only = best_seconds(lambda: [diff[n].sum() for n in diff])
    running = RunningWeightedSum(spec)
    one_thread = best_seconds(lambda: running.fold(diff, 37))
    node_fold = best_seconds(lambda: fold_many_off_hub(running, [(diff, 37, 37)]))

    def rate(seconds):
        return nbytes / seconds / 1e9

    print(f"diff size: {nbytes / MIB:.0f} MiB float32")
    print(f"numpy read-only sum      {rate(read_only):6.2f} GB/s")
    print(f"numpy in-place f32 sum   {rate(in_place):6.2f} GB/s   (baseline)")
    print(f"fold, 1 thread           {rate(one_thread):6.2f} GB/s   "
          f"{in_place / one_thread:6.1%} of baseline")
    print(f"fold, Node ({FOLD_THREADS} threads)   {rate(node_fold):6.2f} GB/s   "
          f"{in_place / node_fold:6.1%} of baseline (target >= 50%)")


if __name__ == "__main__":
    main()
