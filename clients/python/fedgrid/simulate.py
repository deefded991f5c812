"""Simulated federated training against a real Node, on scikit-learn's bundled digits (offline).

The driver hosts the model, gives each simulated device a shard of the training data (IID, or
McMahan et al.'s pathological non-IID split), and runs cycles: each cycle it picks ``per_cycle``
devices at random (as FedAvg samples a fraction C of the clients per round), they ask the Node for
a place, train with the SDK and report; the last report closes the cycle and the driver evaluates
the new checkpoint on held-out data with the plan's forward graph.

Devices run in a bounded pool: separate processes by default (``processes=N``), or threads in this
process (``processes=0``; ONNX Runtime releases the GIL while it computes).
"""

from __future__ import annotations

import multiprocessing
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedgrid_plans import tensors
from fedgrid_plans.executor import PlanExecutor
from fedgrid_plans.plan_file import Plan

from .admin import Admin, compile_model
from .data import load_digits, split_iid, split_noniid, train_test_split
from .errors import FedgridError
from .jobs import Client, Job

SPLITS = ("iid", "noniid")


@dataclass
class CycleRecord:
    """One finished cycle of a simulation."""

    cycle: int
    checkpoint: int  # the checkpoint the cycle produced
    reports: int
    num_samples: int
    loss: float  # clients' training loss, weighted by num_samples
    accuracy: float | None  # clients' training accuracy, weighted by num_samples
    test_accuracy: float  # the new checkpoint on the held-out test set
    seconds: float

    def line(self) -> str:
        client_accuracy = "-" if self.accuracy is None else f"{self.accuracy:.4f}"
        return (f"cycle {self.cycle:3d}  reports {self.reports}  client loss {self.loss:.4f}  "
                f"client acc {client_accuracy}  test acc {self.test_accuracy:.4f}  "
                f"checkpoint {self.checkpoint}  ({self.seconds:.2f} s)")


@dataclass
class SimulationResult:
    name: str
    version: str
    initial_test_accuracy: float
    records: list[CycleRecord] = field(default_factory=list)

    def cycles_to(self, accuracy: float) -> int | None:
        """The first cycle whose checkpoint reached ``accuracy`` on the test set, or None."""
        for record in self.records:
            if record.test_accuracy >= accuracy:
                return record.cycle
        return None

    @property
    def final_test_accuracy(self) -> float:
        return self.records[-1].test_accuracy if self.records else self.initial_test_accuracy


@dataclass(frozen=True)
class DeviceTask:
    node_url: str
    name: str
    version: str
    worker_id: str
    device: int
    seed: int
    shards_key: tuple


def input_shape(plan: Plan) -> tuple[int, ...]:
    """One example's shape, from the plan's features input (without the batch dimension)."""
    for entry in plan.manifest["train"]["inputs"]:
        if entry["role"] == "features":
            return tuple(int(d) for d in entry["shape"][1:])
    raise ValueError("the plan has no features input")


def evaluate(executor: PlanExecutor, parameters: dict[str, np.ndarray], features: np.ndarray,
             labels: np.ndarray) -> float:
    """Classification accuracy of ``parameters`` with the plan's forward graph."""
    predictions = executor.predict(parameters, features)
    return float((np.argmax(predictions, axis=1) == labels).mean())


def digits_shards(shape: tuple[int, ...], devices: int, split: str, seed: int):
    """``(device shards, (test features, test labels))`` of the digits for ``devices`` devices."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    features, labels = load_digits(shape)
    (train_x, train_y), test = train_test_split(features, labels, test_fraction=0.2, seed=seed)
    splitter = split_iid if split == "iid" else split_noniid
    return splitter(train_x, train_y, devices, seed=seed), test


def simulate(
    url: str,
    admin_token: str,
    *,
    model: Any = "digits_mlp",
    checkpoint: Any = None,
    devices: int = 20,
    per_cycle: int = 5,
    cycles: int = 40,
    split: str = "iid",
    epochs: int = 5,
    batch_size: int = 10,
    learning_rate: float | None = None,
    processes: int = 2,
    seed: int = 0,
    target_accuracy: float | None = None,
    name: str | None = None,
    strategy: dict[str, Any] | str | None = None,
    on_cycle: Callable[[CycleRecord], Any] | None = None,
) -> SimulationResult:
    """Host ``model`` on the Node at ``url`` and train it with ``devices`` simulated devices.

    ``model``: a zoo name (compiled here, needs torch), a ``CompiledPlan``, or plan bytes with
    ``checkpoint``. Each cycle ``per_cycle`` devices train ``epochs`` epochs in batches of
    ``batch_size`` and report. Stops after ``cycles`` cycles, or once the test accuracy reaches
    ``target_accuracy``. ``on_cycle`` gets each :class:`CycleRecord` as it finishes.
    """
    if not 1 <= per_cycle <= devices:
        raise ValueError("per_cycle must be between 1 and the number of devices")
    if isinstance(model, str):
        model = compile_model(model, seed=seed)
    if hasattr(model, "to_bytes") and hasattr(model, "checkpoint"):
        plan_bytes, initial = model.to_bytes(), model.checkpoint()
    else:
        plan_bytes, initial = bytes(model), checkpoint
    if checkpoint is not None:
        initial = checkpoint
    if isinstance(initial, bytes | bytearray):
        initial = tensors.decode(initial)
    plan = Plan.from_bytes(plan_bytes)
    evaluator = PlanExecutor(plan)
    shape = input_shape(plan)
    _, (test_x, test_y) = digits_shards(shape, devices, split, seed)

    name = name or f"{plan.name or 'model'}-sim-{secrets.token_hex(3)}"
    version = "1.0"
    client_config = {"batch_size": batch_size, "epochs": epochs}
    if learning_rate is not None:
        client_config["lr"] = learning_rate
    server_config: dict[str, Any] = {
        # Exactly per_cycle devices per cycle, and the cycle closes when all of them reported.
        "max_diffs": per_cycle, "min_diffs": per_cycle, "max_workers": per_cycle,
        "num_cycles": cycles, "cycle_length": 600,
    }
    if strategy is not None:
        server_config["strategy"] = strategy
    with Admin(url, admin_token) as admin:
        admin.host_training(plan_bytes, name, version, checkpoint=initial,
                            client_config=client_config, server_config=server_config)
        result = SimulationResult(name, version, evaluate(evaluator, initial, test_x, test_y))
        node_url = admin.transport.url
        with Client(node_url) as client:
            worker_ids = [client.new_job(name, version).authenticate() for _ in range(devices)]
        rng = np.random.default_rng(seed)
        pool = _make_pool(processes, shape, devices, split, seed)
        try:
            for cycle in range(1, cycles + 1):
                started = time.perf_counter()
                chosen = sorted(rng.choice(devices, size=per_cycle, replace=False).tolist())
                tasks = [DeviceTask(node_url, name, version, worker_ids[d], d,
                                    int(rng.integers(2**31)), (shape, devices, split, seed))
                         for d in chosen]
                outcomes = list(pool.map(run_device, tasks))
                failed = [o for o in outcomes if "error" in o]
                if failed:
                    raise FedgridError(f"cycle {cycle}: {len(failed)} device(s) failed: "
                                       f"{failed[0]['error']}", code="simulation_failed")
                parameters = admin.retrieve_model(name, version)
                weights = np.array([o["num_samples"] for o in outcomes], dtype=np.float64)
                accuracies = [o["metrics"].get("accuracy") for o in outcomes]
                record = CycleRecord(
                    cycle=cycle,
                    checkpoint=max(o["checkpoint"] for o in outcomes) + 1,
                    reports=len(outcomes),
                    num_samples=int(weights.sum()),
                    loss=float(np.average([o["metrics"]["loss"] for o in outcomes], weights=weights)),
                    accuracy=None if None in accuracies else float(np.average(accuracies, weights=weights)),
                    test_accuracy=evaluate(evaluator, parameters, test_x, test_y),
                    seconds=time.perf_counter() - started,
                )
                result.records.append(record)
                if on_cycle is not None:
                    on_cycle(record)
                if target_accuracy is not None and record.test_accuracy >= target_accuracy:
                    break
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return result


def _make_pool(processes: int, shape, devices: int, split: str, seed: int) -> Executor:
    arguments = (shape, devices, split, seed)
    if processes <= 0:
        return ThreadPoolExecutor(max_workers=2, initializer=_init_device_worker,
                                  initargs=arguments)
    # spawn, not fork: the driver holds sockets and ONNX Runtime threads that a fork would copy.
    return ProcessPoolExecutor(max_workers=processes, initializer=_init_device_worker,
                               initargs=arguments, mp_context=multiprocessing.get_context("spawn"))


# Per worker (process or thread pool): the device shards and one Job per simulated device, so a
# device's plan is downloaded and loaded into ONNX Runtime once, not every cycle.
_SHARDS: dict[tuple, list[tuple[np.ndarray, np.ndarray]]] = {}
_JOBS: dict[str, Job] = {}
_CLIENTS: dict[tuple[str, int], Client] = {}
_LOCK = threading.Lock()


def _init_device_worker(shape, devices: int, split: str, seed: int) -> None:
    key = (tuple(shape), devices, split, seed)
    with _LOCK:
        if key not in _SHARDS:
            _SHARDS[key] = digits_shards(shape, devices, split, seed)[0]


def run_device(task: DeviceTask) -> dict[str, Any]:
    """One simulated device's turn: ask for the cycle, train on its shard, report."""
    try:
        with _LOCK:
            # One client per thread: a requests session is not meant to be shared across threads.
            client_key = (task.node_url, threading.get_ident())
            if client_key not in _CLIENTS:
                _CLIENTS[client_key] = Client(task.node_url)
            if task.worker_id not in _JOBS:
                _JOBS[task.worker_id] = _CLIENTS[client_key].new_job(
                    task.name, task.version, worker_id=task.worker_id)
            job = _JOBS[task.worker_id]
            shard = _SHARDS[task.shards_key][task.device]
        assignment = job.request()
        result = assignment.train(shard, seed=task.seed, progress=False)
        assignment.report(result)
        return {"device": task.device, "cycle": assignment.cycle,
                "checkpoint": assignment.checkpoint,
                "num_samples": result.num_samples, "metrics": result.metrics}
    except FedgridError as exc:
        return {"device": task.device, "error": str(exc)}
