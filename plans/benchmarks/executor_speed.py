"""Steps per second: the Python plan executor (ONNX Runtime) vs eager PyTorch, same step, same batch.

    .venv/bin/python plans/benchmarks/executor_speed.py [--models digits_mlp digits_cnn] [--threads 1]

Both sides run one full training step (forward, loss, gradients, SGD update) on the same batch
with the same number of threads, and the rate is steps per CPU-second of the calling thread
(both runtimes compute on the caller's thread when limited to one thread), which makes the
figures stable on a busy machine; with ``--threads`` above 1 it is steps per wall-clock second. The PyTorch side is the usual loop a researcher writes
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

THREADS = 1


def _rate(step, seconds: float) -> float:
    """Steps per second of CPU time of this thread: with one thread per side, that is the
    speed on an idle core, and it stays meaningful on a machine shared with other work."""
    count, begin, cpu_begin = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - begin < seconds:
        step()
        count += 1
    if THREADS > 1:  # other threads do the work: only wall time is meaningful
        return count / (time.perf_counter() - begin)
    return count / (time.thread_time() - cpu_begin)


def _compare(plan_step, torch_step, seconds: float, rounds: int = 5) -> tuple[float, float]:
    """Best of ``rounds`` alternating measurements: on a shared machine, load from other
    processes only ever slows a round down, and alternating exposes both sides to it alike."""
    for _ in range(10):  # warm-up: allocator, ORT arena, torch dispatch caches
        plan_step()
        torch_step()
    plan_rates, torch_rates = [], []
    for _ in range(rounds):
        plan_rates.append(_rate(plan_step, seconds / rounds))
        torch_rates.append(_rate(torch_step, seconds / rounds))
    return max(plan_rates), max(torch_rates)


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

    return _compare(plan_step, torch_step, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["digits_mlp", "digits_cnn", "pygrid_mlp", "mcmahan_cnn"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per side (split over 5 alternating rounds)")
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads
    print(f"batch {args.batch_size}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"{'model':<22}{'executor steps/s':>18}{'eager torch steps/s':>22}{'ratio':>8}")
    for name in args.models:
        plan_rate, torch_rate = benchmark(name, args.batch_size, args.threads, args.seconds)
        print(f"{name:<22}{plan_rate:>18.1f}{torch_rate:>22.1f}{plan_rate / torch_rate:>8.2f}")


if __name__ == "__main__":
    main()
