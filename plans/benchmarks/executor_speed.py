"""Steps per second: the Python plan executor (ONNX Runtime) vs eager PyTorch, same step, same batch.

    .venv/bin/python plans/benchmarks/executor_speed.py [--models digits_mlp digits_cnn] [--threads 1]

Both sides run one full training step (forward, loss, gradients, SGD update) on the same batch
with the same number of threads. The PyTorch side is the usual loop a researcher writes
(``zero_grad``, forward, ``loss.backward()``, ``optimizer.step()``). A ratio above 1 means the
executor is faster. This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from fedgrid_plans.digits import load_digits_arrays
from fedgrid_plans.executor import PlanExecutor
from fedgrid_plans.zoo import ZOO, build_zoo_model, compile_zoo_model


def _rate(step, seconds: float) -> float:
    for _ in range(20):  # warm-up: allocator, ORT arena, torch dispatch caches
        step()
    count, begin = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - begin) < seconds:
        for _ in range(10):
            step()
        count += 10
    return count / elapsed


def benchmark(name: str, batch_size: int, threads: int, seconds: float) -> tuple[float, float]:
    torch.set_num_threads(threads)
    entry = ZOO[name]
    features, labels = load_digits_arrays(entry.input_shape)
    x, y = features[:batch_size], labels[:batch_size]

    compiled = compile_zoo_model(name)
    executor = PlanExecutor(compiled.to_bytes(), threads=threads)
    parameters = compiled.checkpoint()
    learning_rate = entry.learning_rate

    def plan_step():
        # Parameters are not carried over, so every step sees the same inputs on both sides.
        executor.step(parameters, x, y, learning_rate=learning_rate)

    model = build_zoo_model(name)
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    loss_function = nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def torch_step():
        optimizer.zero_grad(set_to_none=True)
        loss_function(model(tx), ty).backward()
        optimizer.step()

    return _rate(plan_step, seconds), _rate(torch_step, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["digits_mlp", "digits_cnn", "pygrid_mlp", "mcmahan_cnn"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per side")
    args = parser.parse_args()
    print(f"batch {args.batch_size}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"{'model':<22}{'executor steps/s':>18}{'eager torch steps/s':>22}{'ratio':>8}")
    for name in args.models:
        plan_rate, torch_rate = benchmark(name, args.batch_size, args.threads, args.seconds)
        print(f"{name:<22}{plan_rate:>18.1f}{torch_rate:>22.1f}{plan_rate / torch_rate:>8.2f}")


if __name__ == "__main__":
    main()
