"""Simulated federated training against a real Node, on the researcher's data or the digits.

The driver reads the data, checks it against the model's plan, holds out a test set and deals
the rest to the simulated devices (IID, label shards after McMahan et al. 2017, or Dirichlet label
skew after Hsu et al. 2019; or one file per device), and only then hosts the model. It runs cycles:
each cycle it picks ``per_cycle`` devices at random (as FedAvg samples a fraction C of the clients
per round), they ask the Node for a place, train with the SDK and report; the last report closes
the cycle and the driver evaluates the new checkpoint on the test set with the plan's forward
graph.

Devices run in a bounded pool: separate processes by default (``processes=N``), or threads in this
process (``processes=0``; ONNX Runtime releases the GIL while it computes). Processes read their
shards from ``.npy`` files the driver writes once, memory-mapped, so no dataset is pickled per
task; threads use the driver's arrays.
"""

from __future__ import annotations

import multiprocessing
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedgrid_plans import tensors
from fedgrid_plans.executor import PlanExecutor
from fedgrid_plans.plan_file import Plan, PlanFormatError

from .admin import Admin, compile_model
from .data import SPLITS, DataError, load_digits, train_test_split
from .data import split as split_dataset
from .errors import FedgridError
from .jobs import Client, Job
from .simulation_data import DataSources, PlanInputs, check_split_settings

__all__ = ["SPLITS", "CycleRecord", "Progress", "SimulationResult", "digits_shards", "evaluate",
           "input_shape", "simulate"]


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
    data: str = ""  # how the data was split and tested (SimulationData.description)
    target_accuracy: float | None = None
    seconds: float = 0.0  # wall time from the call to the last cycle

    def cycles_to(self, accuracy: float) -> int | None:
        """The first cycle whose checkpoint reached ``accuracy`` on the test set, or None."""
        for record in self.records:
            if record.test_accuracy >= accuracy:
                return record.cycle
        return None

    @property
    def final_test_accuracy(self) -> float:
        return self.records[-1].test_accuracy if self.records else self.initial_test_accuracy

    @property
    def best(self) -> CycleRecord | None:
        """The cycle with the best test accuracy (the first, on a tie)."""
        return max(self.records, key=lambda r: r.test_accuracy, default=None)

    @property
    def reports(self) -> int:
        return sum(record.reports for record in self.records)

    def summary(self) -> str:
        """One line: accuracy before and after, the best cycle, the target, reports, wall time."""
        best = self.best
        line = (f"{self.name}: test accuracy {self.initial_test_accuracy:.4f} -> "
                f"{self.final_test_accuracy:.4f} after {len(self.records)} cycles")
        if best is not None:
            line += f" (best {best.test_accuracy:.4f} at cycle {best.cycle})"
        if self.target_accuracy is not None:
            reached = self.cycles_to(self.target_accuracy)
            line += (f", target {self.target_accuracy:g} " +
                     (f"reached at cycle {reached}" if reached else "not reached"))
        return line + f", {self.reports} reports, {self.seconds:.1f} s"


@dataclass(frozen=True)
class Progress:
    """What a simulation is doing while someone waits for it.

    ``stage``: ``"compile"``, ``"host"``, ``"devices"`` (registering them, starting the pool),
    ``"ready"`` (``message`` says what is simulated: the data, the split and the test set), and
    ``"cycle"`` (cycle ``cycle`` is running: ``done`` of its ``total`` devices have finished;
    told as it starts and after each device).
    """

    stage: str
    message: str
    cycle: int | None = None
    done: int | None = None
    total: int | None = None


@dataclass(frozen=True)
class DeviceTask:
    node_url: str
    name: str
    version: str
    worker_id: str
    device: int
    seed: int
    shards: str  # where the worker finds the device's shard (see _device_shard)


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


def digits_shards(shape: tuple[int, ...], devices: int, split_name: str, seed: int):
    """``(device shards, (test features, test labels))`` of the digits for ``devices`` devices:
    20% held out with ``seed``, the rest split ``split_name`` (``"iid"``, ``"shards"``...)."""
    features, labels = load_digits(shape)
    (train_x, train_y), test = train_test_split(features, labels, test_fraction=0.2, seed=seed)
    return split_dataset(train_x, train_y, devices, split_name, seed=seed), test


def simulate(
    url: str,
    admin_token: str,
    *,
    model: Any = "digits_mlp",
    checkpoint: Any = None,
    data: Any = None,
    device_data: Any = None,
    test: Any = None,
    test_fraction: float | None = None,
    devices: int | None = None,
    per_cycle: int = 5,
    cycles: int = 40,
    split: str = "iid",
    alpha: float = 0.5,
    shards_per_device: int = 2,
    epochs: int = 5,
    batch_size: int = 10,
    learning_rate: float | None = None,
    processes: int = 2,
    seed: int = 0,
    target_accuracy: float | None = None,
    name: str | None = None,
    strategy: dict[str, Any] | str | None = None,
    diff_encoding: str | None = None,
    on_cycle: Callable[[CycleRecord], Any] | None = None,
    on_progress: Callable[[Progress], Any] | None = None,
) -> SimulationResult:
    """Host ``model`` on the Node at ``url`` and train it with simulated devices on ``data``.

    ``model``: a zoo name (compiled here, needs torch), a ``CompiledPlan``, a torch module
    (compiled here for the data's shapes, with cross-entropy), or plan bytes (or a ``.fgplan``
    ``Path``) with ``checkpoint`` (arrays, safetensors bytes, or a ``.safetensors`` ``Path``).

    The data, one of:

    - ``data``: one dataset, ``(features, labels)`` arrays, a mapping with ``features`` and
      ``labels`` (or ``x`` and ``y``), or an ``.npz`` path holding them; dealt to ``devices``
      devices (default 20) by ``split``: ``"iid"``, ``"shards"`` (``shards_per_device`` label
      shards each; ``"noniid"`` is the same) or ``"dirichlet"`` (label skew, concentration
      ``alpha``);
    - ``device_data``: one dataset per device (a list of the above), or a directory of ``.npz``
      files, one per device;
    - neither: scikit-learn's digits, in the layout the model takes.

    The test set is ``test`` (same forms), or ``test_fraction`` (default 0.2) held out with
    ``seed`` (from each device's data with ``device_data``). Everything is checked against the
    plan before hosting: a mismatch raises :class:`~fedgrid.data.DataError` with a ``code``.

    Each cycle ``per_cycle`` devices train ``epochs`` epochs in batches of ``batch_size`` and
    report, the diff encoded as ``diff_encoding`` (``"float32"``, the default, ``"float16"`` or
    ``"int8"``). Stops after ``cycles`` cycles, or once the test accuracy reaches
    ``target_accuracy``.
    ``on_cycle`` gets each :class:`CycleRecord` as it finishes, ``on_progress`` each
    :class:`Progress` (compiling, hosting, devices reporting within a cycle).
    """
    started = time.perf_counter()
    tell = on_progress or (lambda progress: None)
    check_split_settings(split, alpha, shards_per_device, test_fraction)
    if devices is not None:
        _check_per_cycle(per_cycle, devices)
    sources = DataSources.read(data, device_data, test)

    # Compiling takes seconds: device processes start meanwhile. A plan file is checked against
    # the data first, so a mismatch is told at once.
    pool = _make_pool(processes) if _needs_compiling(model) else None
    shard_store: _ShardStore | None = None
    worker_ids: list[str] = []
    try:
        plan_bytes, plan, initial = _plan_and_checkpoint(model, checkpoint, sources, seed, tell)
        prepared = sources.prepare(PlanInputs.of(plan), devices=devices, split_name=split,
                                   alpha=alpha, shards_per_device=shards_per_device,
                                   test_fraction=test_fraction, seed=seed)
        devices = len(prepared.shards)
        _check_per_cycle(per_cycle, devices)
        test_x, test_y = prepared.test
        evaluator = PlanExecutor(plan)
        pool = pool or _make_pool(processes)
        shard_store = _ShardStore.hold(prepared.shards, in_files=processes > 0)

        name = name or f"{plan.name or 'model'}-sim-{secrets.token_hex(3)}"
        version = "1.0"
        client_config = {"batch_size": batch_size, "epochs": epochs}
        if learning_rate is not None:
            client_config["lr"] = learning_rate
        if diff_encoding is not None:
            client_config["diff_encoding"] = diff_encoding
        server_config: dict[str, Any] = {
            # Exactly per_cycle devices per cycle, and the cycle closes when all of them reported.
            "max_diffs": per_cycle, "min_diffs": per_cycle, "max_workers": per_cycle,
            "num_cycles": cycles, "cycle_length": 600,
        }
        if strategy is not None:
            server_config["strategy"] = strategy
        with Admin(url, admin_token) as admin:
            tell(Progress("host", f"hosting {name} on {admin.url}..."))
            admin.host_training(plan_bytes, name, version, checkpoint=initial,
                                client_config=client_config, server_config=server_config)
            result = SimulationResult(name, version, evaluate(evaluator, initial, test_x, test_y),
                                      data=prepared.description, target_accuracy=target_accuracy)
            node_url = admin.transport.url
            tell(Progress("devices", f"registering {devices} devices..."))
            with Client(node_url) as client:
                worker_ids = [client.new_job(name, version).authenticate() for _ in range(devices)]
            tell(Progress("ready", f"{name}: {prepared.description}; {per_cycle} devices per "
                                   f"cycle, E={epochs} B={batch_size}, up to {cycles} cycles"))
            rng = np.random.default_rng(seed)
            for cycle in range(1, cycles + 1):
                cycle_started = time.perf_counter()
                chosen = sorted(rng.choice(devices, size=per_cycle, replace=False).tolist())
                tasks = [DeviceTask(node_url, name, version, worker_ids[d], d,
                                    int(rng.integers(2**31)), shard_store.location)
                         for d in chosen]
                outcomes = _run_cycle(pool, tasks, cycle, tell)
                parameters = admin.retrieve_model(name, version)
                record = _cycle_record(cycle, outcomes,
                                       evaluate(evaluator, parameters, test_x, test_y),
                                       time.perf_counter() - cycle_started)
                result.records.append(record)
                result.seconds = time.perf_counter() - started
                if on_cycle is not None:
                    on_cycle(record)
                if target_accuracy is not None and record.test_accuracy >= target_accuracy:
                    break
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if shard_store is not None:
            shard_store.release()
        _forget_jobs(worker_ids)
    result.seconds = time.perf_counter() - started
    return result


def _check_per_cycle(per_cycle: int, devices: int) -> None:
    if not 1 <= per_cycle <= devices:
        raise DataError(f"per_cycle ({per_cycle}) must be between 1 and the number of devices "
                        f"({devices})", code="per_cycle_invalid")


def _cycle_record(cycle: int, outcomes: list[dict[str, Any]], test_accuracy: float,
                  seconds: float) -> CycleRecord:
    """The cycle's row: the devices' metrics weighted by their samples, as FedAvg weighs them."""
    weights = np.array([o["num_samples"] for o in outcomes], dtype=np.float64)
    accuracies = [o["metrics"].get("accuracy") for o in outcomes]
    return CycleRecord(
        cycle=cycle,
        checkpoint=max(o["checkpoint"] for o in outcomes) + 1,
        reports=len(outcomes),
        num_samples=int(weights.sum()),
        loss=float(np.average([o["metrics"]["loss"] for o in outcomes], weights=weights)),
        accuracy=None if None in accuracies else float(np.average(accuracies, weights=weights)),
        test_accuracy=test_accuracy,
        seconds=seconds,
    )


def _plan_and_checkpoint(model: Any, checkpoint: Any, sources: DataSources, seed: int,
                         tell: Callable[[Progress], Any]) -> tuple[bytes, Plan, dict[str, np.ndarray]]:
    """The plan (bytes and parsed) and its initial parameters, compiling ``model`` if it is not
    a plan."""
    if isinstance(model, str):
        tell(Progress("compile", f"compiling {model}..."))
        try:
            model = compile_model(model, seed=seed)
        except KeyError as exc:  # an unknown zoo name
            raise DataError(str(exc.args[0]), code="model_unknown") from None
    elif _needs_compiling(model):  # a torch module
        example = sources.example()
        if example is None:
            raise DataError("compiling a torch module needs the data it trains on (data= or "
                            "device_data=) for its input shape", code="data_invalid")
        tell(Progress("compile", f"compiling {type(model).__name__}..."))
        model = compile_model(model, example)
    if hasattr(model, "to_bytes") and hasattr(model, "checkpoint"):
        plan_bytes, initial = model.to_bytes(), model.checkpoint()
    elif isinstance(model, Plan):
        plan_bytes, initial = model.to_bytes(), None
    elif isinstance(model, Path):
        plan_bytes, initial = model.read_bytes(), None
    else:
        plan_bytes, initial = bytes(model), None
    if checkpoint is not None:
        initial = checkpoint
    if isinstance(initial, str | Path):
        initial = Path(initial).read_bytes()
    if isinstance(initial, bytes | bytearray):
        initial = tensors.decode(bytes(initial))
    if initial is None:
        raise DataError("a plan file needs its initial parameters: checkpoint= (or --checkpoint)",
                        code="checkpoint_missing")
    try:
        plan = Plan.from_bytes(plan_bytes)
    except PlanFormatError as exc:
        raise DataError(f"the model is not a readable plan: {exc}", code="plan_unsupported") from None
    return plan_bytes, plan, initial


def _needs_compiling(model: Any) -> bool:
    """A zoo name or a torch module (not a compiled plan, plan bytes or a plan file)."""
    return isinstance(model, str) or (hasattr(model, "parameters") and hasattr(model, "forward")
                                      and not hasattr(model, "to_bytes"))


def _run_cycle(pool: Executor, tasks: list[DeviceTask], cycle: int,
               tell: Callable[[Progress], Any]) -> list[dict[str, Any]]:
    """Run the cycle's devices in the pool; every one must have reported."""
    tell(Progress("cycle", f"cycle {cycle}: 0/{len(tasks)} devices done", cycle=cycle, done=0,
                  total=len(tasks)))
    futures = [pool.submit(run_device, task) for task in tasks]
    outcomes, failed = [], []
    try:
        for done, future in enumerate(as_completed(futures), start=1):
            outcome = future.result()
            (failed if "error" in outcome else outcomes).append(outcome)
            tell(Progress("cycle", f"cycle {cycle}: {done}/{len(tasks)} devices done", cycle=cycle,
                          done=done, total=len(tasks)))
    except BrokenProcessPool:
        raise FedgridError(f"cycle {cycle}: a device process died (out of memory?); try fewer "
                           "processes", code="simulation_failed") from None
    if failed:
        raise FedgridError(f"cycle {cycle}: {len(failed)} device(s) failed: {failed[0]['error']}",
                           code="simulation_failed")
    return outcomes


def _make_pool(processes: int) -> Executor:
    if processes <= 0:
        return ThreadPoolExecutor(max_workers=2)
    # spawn, not fork: the driver holds sockets and ONNX Runtime threads that a fork would copy.
    pool = ProcessPoolExecutor(max_workers=processes,
                               mp_context=multiprocessing.get_context("spawn"))
    # Start the workers now: they import numpy and ONNX Runtime while the driver compiles, checks
    # the data and hosts, instead of during the first cycle.
    for _ in range(processes):
        pool.submit(_warm_up)
    return pool


def _warm_up() -> None:
    """A no-op task: unpickling it imports this module (and ONNX Runtime) in the worker."""


class _ShardStore:
    """Where device workers find their shards: ``.npy`` files (for processes: written once,
    memory-mapped by every worker) or the driver's own arrays (for threads)."""

    def __init__(self, location: str, folder: Path | None) -> None:
        self.location = location
        self.folder = folder

    @classmethod
    def hold(cls, shards: list[tuple[np.ndarray, np.ndarray]], *, in_files: bool) -> _ShardStore:
        if not in_files:
            location = f"memory:{secrets.token_hex(8)}"
            with _LOCK:
                _MEMORY_SHARDS[location] = shards
            return cls(location, None)
        folder = Path(tempfile.mkdtemp(prefix="fedgrid-shards-"))
        for device, (features, labels) in enumerate(shards):
            np.save(folder / f"{device}-features.npy", features)
            np.save(folder / f"{device}-labels.npy", labels)
        return cls(str(folder), folder)

    def release(self) -> None:
        with _LOCK:
            _MEMORY_SHARDS.pop(self.location, None)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


# Per worker (process or thread pool): the device shards and one Job per simulated device, so a
# device's plan is downloaded and loaded into ONNX Runtime once, not every cycle.
_MEMORY_SHARDS: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
_FILE_SHARDS: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
_JOBS: dict[str, Job] = {}
_CLIENTS: dict[tuple[str, int], Client] = {}
_LOCK = threading.Lock()


def _device_shard(location: str, device: int) -> tuple[np.ndarray, np.ndarray]:
    if location in _MEMORY_SHARDS:
        return _MEMORY_SHARDS[location][device]
    key = (location, device)
    if key not in _FILE_SHARDS:
        folder = Path(location)
        # np.asarray of a memmap is a plain array over the mapping: pages are read on use and
        # shared with the other workers through the page cache.
        _FILE_SHARDS[key] = (
            np.asarray(np.load(folder / f"{device}-features.npy", mmap_mode="r")),
            np.asarray(np.load(folder / f"{device}-labels.npy", mmap_mode="r")),
        )
    return _FILE_SHARDS[key]


def _forget_jobs(worker_ids: list[str]) -> None:
    """Drop a finished simulation's jobs from this process (the thread pool's)."""
    with _LOCK:
        for worker_id in worker_ids:
            _JOBS.pop(worker_id, None)


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
            shard = _device_shard(task.shards, task.device)
        assignment = job.request()
        result = assignment.train(shard, seed=task.seed, progress=False)
        assignment.report(result)
        return {"device": task.device, "cycle": assignment.cycle,
                "checkpoint": assignment.checkpoint,
                "num_samples": result.num_samples, "metrics": result.metrics}
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which fails the cycle
        return {"device": task.device, "error": str(exc) if isinstance(exc, FedgridError)
                else f"{type(exc).__name__}: {exc}"}
