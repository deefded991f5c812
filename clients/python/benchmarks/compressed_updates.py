"""Compressed updates: upload bytes per report and digits accuracy for float32, float16 and int8.

1. Bytes: the safetensors diff one device uploads per report (the multipart body adds a few
   hundred bytes of form fields, the same for every encoding), for the zoo's digits MLP and
   McMahan et al.'s MNIST CNN, with the time the SDK takes to encode it and the decoding error
   of a real diff (one local epoch of training on digits for the MLP; a random diff with the
   spread of a real one for the CNN, whose MNIST data is not bundled).
2. Accuracy: FedAvg on digits (20 devices, 5 per cycle, E=5, B=10, IID) against a real Node,
   the same seed for every encoding, after ``--cycles`` cycles; the mean over ``--seeds`` seeds,
   and the largest difference of a final parameter from the float32 run's.

Ratios are to float32 in the same run. Run from the repository root:

    .venv/bin/python clients/python/benchmarks/compressed_updates.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fedgrid import Admin
from fedgrid.data import load_digits
from fedgrid.diff_encoding import ENCODINGS, encode_diff
from fedgrid.simulate import simulate
from fedgrid_plans import tensors
from fedgrid_plans.executor import PlanExecutor, train
from fedgrid_plans.plan_file import Plan

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from fedgrid_node.cycles.diff_encoding import decode_checked  # noqa: E402
from tests.support.node_process import start_node  # noqa: E402

ADMIN_TOKEN = "benchmark-admin-token"


def digits_mlp_diff(compiled) -> dict[str, np.ndarray]:
    """One device's real diff: an epoch of the plan's training on 90 digits."""
    features, labels = load_digits((64,))
    result = train(PlanExecutor(Plan.from_bytes(compiled.to_bytes())), compiled.checkpoint(),
                   features[:90], labels[:90], batch_size=10, epochs=1, seed=0)
    return result.diff


def random_diff_like(checkpoint: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: (rng.standard_normal(value.shape) * 1e-3).astype(np.float32)
            for name, value in checkpoint.items()}


def encode_ms(diff, encoding: str, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        encode_diff(diff, encoding)
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def decoding_error(diff, encoding: str) -> str:
    """The largest |x - x̂| over the diff, relative to the largest |x| of its tensor."""
    if encoding == "float32":
        return "0"
    spec = {name: (value.shape, np.dtype(np.float32)) for name, value in diff.items()}
    decoded = decode_checked(spec, tensors.decode(encode_diff(diff, encoding)), encoding)
    worst = max(float(np.max(np.abs(decoded[n] - diff[n])) / max(float(np.max(np.abs(diff[n]))),
                                                                  1e-30))
                for n in diff if diff[n].size)
    return f"{worst:.1e}"


def bytes_table(models: list[tuple[str, dict[str, np.ndarray]]]) -> None:
    print("upload bytes per report (the diff), encode time, worst |x - x̂| / max|x| per tensor")
    print(f"{'model':<14} {'parameters':>10} {'encoding':<8} {'bytes':>10} {'ratio':>6} "
          f"{'encode ms':>9} {'error':>8}")
    for label, diff in models:
        count = sum(v.size for v in diff.values())
        baseline = len(encode_diff(diff, "float32"))
        for encoding in ENCODINGS:
            size = len(encode_diff(diff, encoding))
            print(f"{label:<14} {count:>10,} {encoding:<8} {size:>10,} {size / baseline:>6.3f} "
                  f"{encode_ms(diff, encoding):>9.2f} {decoding_error(diff, encoding):>8}",
                  flush=True)


def accuracy_table(compiled, *, cycles: int, seeds: int) -> None:
    print(f"\nFedAvg on digits, 20 devices, 5 per cycle, E=5, B=10, IID: test accuracy after "
          f"{cycles} cycles (mean of {seeds} seed(s))")
    with tempfile.TemporaryDirectory(prefix="fedgrid-bench-") as folder:
        node = start_node(data_dir=Path(folder), extra_args=("--log-level", "WARNING"),
                          admin_token=ADMIN_TOKEN)
        try:
            results: dict[str, list[float]] = {encoding: [] for encoding in ENCODINGS}
            seconds: dict[str, float] = dict.fromkeys(ENCODINGS, 0.0)
            # How far each final checkpoint is from the float32 run's (same seed): the runs do
            # differ, even where the 360 test digits score them the same.
            apart: dict[str, float] = dict.fromkeys(ENCODINGS, 0.0)
            for seed in range(seeds):
                finals = {}
                for encoding in ENCODINGS:
                    started = time.perf_counter()
                    result = simulate(node.url, ADMIN_TOKEN, model=compiled, devices=20,
                                      per_cycle=5, cycles=cycles, split="iid", epochs=5,
                                      batch_size=10, processes=0, seed=seed,
                                      diff_encoding=encoding)
                    seconds[encoding] += time.perf_counter() - started
                    results[encoding].append(result.final_test_accuracy)
                    with Admin(node.url, ADMIN_TOKEN) as admin:
                        finals[encoding] = admin.retrieve_model(result.name, result.version)
                    apart[encoding] = max(apart[encoding], max(
                        float(np.max(np.abs(finals[encoding][n] - finals["float32"][n])))
                        for n in finals[encoding]))
        finally:
            node.stop()
    baseline = statistics.mean(results["float32"])
    print(f"{'encoding':<8} {'accuracy':>8} {'ratio':>6} {'seconds':>8} {'max |Δw|':>9}  per seed")
    for encoding in ENCODINGS:
        mean = statistics.mean(results[encoding])
        per_seed = " ".join(f"{a:.4f}" for a in results[encoding])
        print(f"{encoding:<8} {mean:>8.4f} {mean / baseline:>6.4f} {seconds[encoding]:>8.1f} "
              f"{apart[encoding]:>9.1e}  {per_seed}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    from fedgrid_plans.zoo import compile_zoo_model

    mlp = compile_zoo_model("digits_mlp", seed=0)
    cnn = compile_zoo_model("mcmahan_cnn", seed=0)
    bytes_table([("digits_mlp", digits_mlp_diff(mlp)),
                 ("mcmahan_cnn", random_diff_like(cnn.checkpoint(), 0))])
    accuracy_table(mlp, cycles=args.cycles, seeds=args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
