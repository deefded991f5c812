"""Run a plan with ONNX Runtime: one step (:class:`PlanExecutor`) or a whole local round (:func:`train`).

This is what a Python device runs; it imports onnxruntime and numpy, never torch. Inputs and
outputs are found through the manifest's roles, not by position, so the executor works for any
plan that passes :func:`fedgrid_plans.validation.validate_plan`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnxruntime

from fedgrid_plans import manifest as names
from fedgrid_plans.plan_file import Plan


@dataclass
class StepResult:
    """What one training step returns: loss, metrics, and the updated parameters and state."""

    loss: float
    metrics: dict[str, float]
    parameters: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray]


@dataclass
class BatchReport:
    """Passed to ``train``'s ``on_batch`` callback after every update."""

    epoch: int
    update: int  # 1-based count of updates so far
    batch_size: int
    loss: float
    metrics: dict[str, float]


@dataclass
class TrainingResult:
    """The outcome of a local round: what a device reports, plus the trained parameters."""

    diff: dict[str, np.ndarray]  # start - trained, float32, checkpoint names and order
    num_samples: int  # distinct examples trained on (the FedAvg weight)
    metrics: dict[str, float]  # "loss" and, if the plan has it, "accuracy": sample-weighted means
    parameters: dict[str, np.ndarray]
    updates: int
    losses: list[float] = field(default_factory=list)  # loss of every update, in order


def session_options(threads: int = 1) -> onnxruntime.SessionOptions:
    """Single-threaded by default: devices train in the background and share CPUs."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


class PlanExecutor:
    """Runs a plan's training graph (and forward graph, if present) with ONNX Runtime."""

    def __init__(self, plan: Plan | bytes, *, threads: int = 1):
        self.plan = plan if isinstance(plan, Plan) else Plan.from_bytes(plan)
        manifest = self.plan.manifest
        self.parameter_names = [p["name"] for p in manifest["parameters"]]
        self._options = session_options(threads)
        self._train = onnxruntime.InferenceSession(self.plan.graphs["train"], self._options, providers=["CPUExecutionProvider"])
        self._forward = None
        inputs = manifest["train"]["inputs"]
        outputs = manifest["train"]["outputs"]
        by_role = _by_role(inputs)
        self._features = by_role[names.FEATURES][0]
        self._labels = by_role[names.LABELS][0]
        self._learning_rate = by_role[names.LEARNING_RATE][0]["name"]
        self._parameter_inputs = {e["parameter"]: e["name"] for e in by_role.get(names.PARAMETER, [])}
        self._state_inputs = {e["parameter"]: e["name"] for e in by_role.get(names.OPTIMIZER_STATE, [])}
        self._global_inputs = {e["parameter"]: e["name"] for e in by_role.get(names.GLOBAL_PARAMETER, [])}
        self._output_names = [e["name"] for e in outputs]
        self._output_roles = [(e["role"], e.get("parameter"), e.get("metric")) for e in outputs]
        self.default_learning_rate = float(manifest["defaults"]["learning_rate"])
        self.metric_names = [e["metric"] for e in outputs if e["role"] == names.METRIC]

    @property
    def uses_optimizer_state(self) -> bool:
        return bool(self._state_inputs)

    @property
    def uses_global_parameters(self) -> bool:
        return bool(self._global_inputs)

    def initial_optimizer_state(self) -> dict[str, np.ndarray]:
        """Zeros for every optimizer-state entry (momentum buffers start at zero)."""
        return {
            entry["parameter"]: np.zeros(entry["shape"], dtype=np.float32)
            for entry in self.plan.manifest.get("optimizer_state", [])
        }

    def step(
        self,
        parameters: Mapping[str, np.ndarray],
        features: np.ndarray,
        labels: np.ndarray,
        *,
        learning_rate: float | None = None,
        optimizer_state: Mapping[str, np.ndarray] | None = None,
        global_parameters: Mapping[str, np.ndarray] | None = None,
    ) -> StepResult:
        """One update on one batch. ``optimizer_state`` defaults to zeros and
        ``global_parameters`` (FedProx) to ``parameters``."""
        feeds = {
            self._features["name"]: np.ascontiguousarray(features, dtype=names.DTYPES[self._features["dtype"]]),
            self._labels["name"]: np.ascontiguousarray(labels, dtype=names.DTYPES[self._labels["dtype"]]),
            self._learning_rate: np.asarray(self.default_learning_rate if learning_rate is None else learning_rate, dtype=np.float32),
        }
        for parameter, input_name in self._parameter_inputs.items():
            feeds[input_name] = parameters[parameter]
        if self._state_inputs:
            state = optimizer_state if optimizer_state is not None else self.initial_optimizer_state()
            for parameter, input_name in self._state_inputs.items():
                feeds[input_name] = state[parameter]
        if self._global_inputs:
            anchor = global_parameters if global_parameters is not None else parameters
            for parameter, input_name in self._global_inputs.items():
                feeds[input_name] = anchor[parameter]
        results = self._train.run(self._output_names, feeds)
        loss = 0.0
        metrics: dict[str, float] = {}
        updated: dict[str, np.ndarray] = {}
        updated_state: dict[str, np.ndarray] = {}
        for (role, parameter, metric), value in zip(self._output_roles, results, strict=True):
            if role == names.LOSS:
                loss = float(value)
            elif role == names.METRIC:
                metrics[metric] = float(value)
            elif role == names.UPDATED_PARAMETER:
                updated[parameter] = value
            elif role == names.UPDATED_OPTIMIZER_STATE:
                updated_state[parameter] = value
        return StepResult(loss=loss, metrics=metrics, parameters=updated, optimizer_state=updated_state)

    def predict(self, parameters: Mapping[str, np.ndarray], features: np.ndarray) -> np.ndarray:
        """Run the forward graph (inference); raises if the plan has none."""
        if "forward" not in self.plan.graphs:
            raise ValueError("this plan has no forward graph")
        if self._forward is None:
            self._forward = onnxruntime.InferenceSession(self.plan.graphs["forward"], self._options, providers=["CPUExecutionProvider"])
        section = self.plan.manifest["forward"]
        feeds = {}
        for entry in section["inputs"]:
            if entry["role"] == names.FEATURES:
                feeds[entry["name"]] = np.ascontiguousarray(features, dtype=np.float32)
            else:
                feeds[entry["name"]] = parameters[entry["parameter"]]
        (prediction,) = self._forward.run([section["outputs"][0]["name"]], feeds)
        return prediction


def train(
    plan: Plan | bytes | PlanExecutor,
    parameters: Mapping[str, np.ndarray],
    features: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int | None = None,
    epochs: int | None = None,
    max_updates: int | None = None,
    learning_rate: float | None = None,
    shuffle: bool | None = None,
    seed: int = 0,
    on_batch: Callable[[BatchReport], bool | None] | None = None,
    threads: int = 1,
) -> TrainingResult:
    """Train on ``(features, labels)`` and return the diff ``start - trained``.

    Unset options come from the plan's ``defaults``. Each epoch visits every example once in
    batches of ``batch_size`` (the last batch may be smaller), in an order drawn from
    ``numpy.random.default_rng(seed)`` when shuffling. Training stops after ``epochs`` or at
    ``max_updates`` updates, or when ``on_batch`` returns ``False``.
    """
    executor = plan if isinstance(plan, PlanExecutor) else PlanExecutor(plan, threads=threads)
    defaults = executor.plan.manifest["defaults"]
    batch_size = int(batch_size or defaults.get("batch_size") or 32)
    epochs = int(epochs if epochs is not None else defaults.get("epochs") or 1)
    if max_updates is None:
        max_updates = defaults.get("max_updates")
    shuffle = defaults.get("shuffle", True) if shuffle is None else shuffle
    learning_rate = executor.default_learning_rate if learning_rate is None else float(learning_rate)
    features = np.asarray(features)
    labels = np.asarray(labels)
    count = len(features)
    if count == 0 or len(labels) != count:
        raise ValueError(f"need as many labels as features and at least one example (got {count} and {len(labels)})")
    if batch_size < 1 or epochs < 1:
        raise ValueError("batch_size and epochs must be >= 1")

    start = {n: np.array(parameters[n], dtype=np.float32) for n in executor.parameter_names}
    current = dict(start)
    state = executor.initial_optimizer_state() if executor.uses_optimizer_state else None
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    weighted_loss = 0.0
    weighted_metrics: dict[str, float] = {}
    seen = np.zeros(count, dtype=bool)
    samples = 0
    updates = 0
    stop = False
    for epoch in range(epochs):
        order = rng.permutation(count) if shuffle else np.arange(count)
        for begin in range(0, count, batch_size):
            if max_updates is not None and updates >= max_updates:
                stop = True
                break
            index = order[begin : begin + batch_size]
            result = executor.step(
                current,
                features[index],
                labels[index],
                learning_rate=learning_rate,
                optimizer_state=state,
                global_parameters=start,
            )
            current = result.parameters
            if state is not None:
                state = result.optimizer_state
            updates += 1
            seen[index] = True
            size = len(index)
            samples += size
            losses.append(result.loss)
            weighted_loss += result.loss * size
            for metric, value in result.metrics.items():
                if metric != "num_samples":
                    weighted_metrics[metric] = weighted_metrics.get(metric, 0.0) + value * size
            if on_batch is not None:
                report = BatchReport(epoch=epoch, update=updates, batch_size=size, loss=result.loss, metrics=result.metrics)
                if on_batch(report) is False:
                    stop = True
                    break
        if stop:
            break
    metrics = {"loss": weighted_loss / max(samples, 1)}
    metrics.update({m: v / max(samples, 1) for m, v in weighted_metrics.items()})
    diff = {n: (start[n] - current[n]).astype(np.float32) for n in executor.parameter_names}
    return TrainingResult(
        diff=diff,
        num_samples=int(seen.sum()),
        metrics=metrics,
        parameters={n: np.asarray(current[n], dtype=np.float32) for n in executor.parameter_names},
        updates=updates,
        losses=losses,
    )


def _by_role(entries: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for entry in entries:
        grouped.setdefault(entry["role"], []).append(entry)
    return grouped
