"""What a simulation trains and tests on: the researcher's data (or the digits), checked against
the model's plan and dealt to the simulated devices.

Every check runs before anything is hosted, and each failure is one :class:`~fedgrid.data.DataError`
naming the file (or argument), what is wrong and what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedgrid_plans.plan_file import Plan

from .data import (
    SPLIT_ALIASES,
    SPLITS,
    DataError,
    as_arrays,
    device_files,
    load_digits,
    load_npz,
    split,
    train_test_split,
)

DEFAULT_TEST_FRACTION = 0.2
DEFAULT_DEVICES = 20


@dataclass
class Dataset:
    """Features and labels, and where they came from (for messages)."""

    features: np.ndarray
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return self.features, self.labels


@dataclass(frozen=True)
class PlanInputs:
    """What the plan's graphs take: one example's shape and dtype, the labels' dtype, and how many
    classes the forward graph scores (None when its output does not say)."""

    model: str
    shape: tuple[int, ...]
    features_dtype: np.dtype
    labels_dtype: np.dtype
    classes: int | None

    @classmethod
    def of(cls, plan: Plan) -> PlanInputs:
        model = plan.name or "the model"
        train = {entry["role"]: entry for entry in plan.manifest["train"]["inputs"]}
        if "features" not in train or "labels" not in train:
            raise DataError(f"{model}'s plan has no features or labels input to train on",
                            code="plan_unsupported")
        labels_dtype = np.dtype(train["labels"]["dtype"])
        if labels_dtype.kind not in "iu":
            loss = plan.manifest.get("training", {}).get("loss", "?")
            raise DataError(f"{model} takes {labels_dtype} labels (loss {loss}); simulations "
                            "measure classification accuracy, so they need a plan with class "
                            "labels (e.g. loss cross_entropy)", code="plan_unsupported")
        if "forward" not in plan.graphs or "forward" not in plan.manifest:
            raise DataError(f"{model}'s plan has no forward graph to test checkpoints with; "
                            "compile it with include_forward=True", code="plan_unsupported")
        outputs = plan.manifest["forward"]["outputs"]
        last = outputs[0]["shape"][-1] if outputs and outputs[0]["shape"] else None
        return cls(
            model=model,
            shape=tuple(int(d) for d in train["features"]["shape"][1:]),
            features_dtype=np.dtype(train["features"]["dtype"]),
            labels_dtype=labels_dtype,
            classes=last if isinstance(last, int) else None,
        )

    def fit(self, dataset: Dataset) -> Dataset:
        """``dataset`` in the plan's dtypes, or a DataError saying why the model cannot take it."""
        features, labels, source = dataset.features, dataset.labels, dataset.source
        if features.shape[1:] != self.shape:
            hint = ""
            if int(np.prod(features.shape[1:])) == int(np.prod(self.shape)):
                hint = f"; reshape them with features.reshape(-1, {', '.join(map(str, self.shape))})"
            raise DataError(f"{source}: an example's features are shaped {_shape(features.shape[1:])}"
                            f" but {self.model} takes {_shape(self.shape)}{hint}; or use a model "
                            f"built for {_shape(features.shape[1:])} inputs",
                            code="data_shape_mismatch")
        if features.dtype.kind not in "biuf":
            raise DataError(f"{source}: features must be numbers, not {features.dtype}",
                            code="data_shape_mismatch")
        if features.dtype.kind == "f" and not np.isfinite(features).all():
            raise DataError(f"{source}: features hold NaN or infinite values; drop or impute those "
                            "examples", code="features_not_finite")
        if labels.ndim != 1:
            raise DataError(f"{source}: labels must be one class index per example, shaped "
                            f"({len(labels)},), not {labels.shape} (one-hot labels: use "
                            "labels.argmax(axis=1))", code="labels_invalid")
        if labels.dtype.kind == "f":
            if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
                raise DataError(f"{source}: labels must be whole class indices, found values such "
                                f"as {labels[labels != np.round(labels)][:1].tolist() or 'NaN'}",
                                code="labels_invalid")
        elif labels.dtype.kind not in "biu":
            raise DataError(f"{source}: labels must be class indices (integers), not "
                            f"{labels.dtype}", code="labels_invalid")
        low, high = float(labels.min()), float(labels.max())
        if low < 0 or (self.classes is not None and high >= self.classes):
            scored = f"{self.classes} classes (0..{self.classes - 1})" if self.classes else \
                "classes from 0"
            raise DataError(f"{source}: labels range over {low:g}..{high:g} but {self.model} "
                            f"scores {scored}; relabel the data or use a model with more "
                            "outputs", code="labels_out_of_range")
        return Dataset(np.ascontiguousarray(features, dtype=self.features_dtype),
                       labels.astype(self.labels_dtype), source)


@dataclass
class SimulationData:
    """The devices' shards and the test set, and a line saying how they were made."""

    shards: list[tuple[np.ndarray, np.ndarray]]
    test: tuple[np.ndarray, np.ndarray]
    description: str


@dataclass
class DataSources:
    """The data a simulation was given, read but not yet checked against a plan."""

    pooled: Dataset | None  # one dataset to split; None: per-device data, or the digits
    per_device: list[Dataset] | None
    test: Dataset | None

    @classmethod
    def read(cls, data: Any = None, device_data: Any = None, test: Any = None) -> DataSources:
        if data is not None and device_data is not None:
            raise DataError("give one dataset to split (data) or per-device data (device_data), "
                            "not both", code="data_invalid")
        per_device = None
        if device_data is not None:
            if isinstance(device_data, str | Path) or (
                    isinstance(device_data, list | tuple) and device_data
                    and all(isinstance(item, str | Path) for item in device_data)):
                device_data = device_files(device_data)
            per_device = [read_dataset(item, f"device {i}") for i, item in enumerate(device_data)]
            if not per_device:
                raise DataError("device_data lists no devices", code="data_invalid")
        return cls(
            pooled=None if data is None else read_dataset(data, "data"),
            per_device=per_device,
            test=None if test is None else read_dataset(test, "test set"),
        )

    def example(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Two examples (features float32, labels int64) to compile a torch module for."""
        first = self.pooled if self.pooled is not None else \
            (self.per_device[0] if self.per_device else None)
        if first is None:
            return None
        return (np.asarray(first.features[:2], dtype=np.float32),
                np.asarray(first.labels[:2]).astype(np.int64))

    def prepare(self, inputs: PlanInputs, *, devices: int | None, split_name: str, alpha: float,
                shards_per_device: int, test_fraction: float | None, seed: int) -> SimulationData:
        """Check every dataset against the plan, hold out the test set, and deal the shards."""
        if self.test is not None and test_fraction is not None:
            raise DataError("give a test set or a test fraction, not both", code="data_invalid")
        fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        if self.per_device is not None:
            if SPLIT_ALIASES.get(split_name, split_name) != "iid":
                raise DataError(f"per-device data is split already; the {split_name!r} split is "
                                "for one dataset (data=, --data)", code="data_invalid")
            return self._per_device(inputs, devices, fraction, seed)
        pooled = inputs.fit(self.pooled if self.pooled is not None else _digits(inputs))
        how = SPLIT_ALIASES.get(split_name, split_name)
        devices = DEFAULT_DEVICES if devices is None else devices
        if self.test is not None:
            train, test = pooled.arrays(), inputs.fit(self.test).arrays()
            tested = f"test set {len(test[1])} examples ({self.test.source})"
        else:
            train, test = train_test_split(*pooled.arrays(), test_fraction=fraction, seed=seed)
            tested = f"test set {len(test[1])} examples held out ({fraction:g}, seed {seed})"
        shards = split(*train, devices, how, alpha=alpha, shards_per_device=shards_per_device,
                       seed=seed)
        _check_shards(shards, [f"device {i}" for i in range(devices)])
        detail = {"iid": "iid", "shards": f"label shards, {shards_per_device} per device",
                  "dirichlet": f"Dirichlet alpha={alpha:g}"}[how]
        return SimulationData(shards, test, f"{pooled.source}: {len(train[1])} training examples "
                                            f"over {devices} devices ({detail}); {tested}")

    def _per_device(self, inputs: PlanInputs, devices: int | None, fraction: float,
                    seed: int) -> SimulationData:
        assert self.per_device is not None
        if devices is not None and devices != len(self.per_device):
            raise DataError(f"{devices} devices asked for, but the per-device data has "
                            f"{len(self.per_device)} (one per file); leave the number of devices "
                            "out", code="data_invalid")
        fitted = [inputs.fit(dataset) for dataset in self.per_device]
        _check_shards([d.arrays() for d in fitted], [d.source for d in fitted])
        if self.test is not None:
            shards = [d.arrays() for d in fitted]
            test = inputs.fit(self.test).arrays()
            tested = f"test set {len(test[1])} examples ({self.test.source})"
        else:
            # Each device keeps its own mix: the test set is the same fraction of every device.
            shards, tests = [], []
            for number, dataset in enumerate(fitted):
                try:
                    kept, held = train_test_split(*dataset.arrays(), test_fraction=fraction,
                                                  seed=seed + number)
                except DataError as exc:
                    raise DataError(f"{dataset.source}: {exc.message}", code=exc.code) from None
                shards.append(kept)
                tests.append(held)
            test = (np.concatenate([x for x, _ in tests]), np.concatenate([y for _, y in tests]))
            tested = (f"test set {len(test[1])} examples held out ({fraction:g} of each device, "
                      f"seed {seed})")
        total = sum(len(y) for _, y in shards)
        return SimulationData(shards, test, f"per-device data: {total} training examples on "
                                            f"{len(shards)} devices; {tested}")


def read_dataset(data: Any, source: str) -> Dataset:
    """One dataset from an ``.npz`` path or from arrays (anything :func:`as_arrays` takes)."""
    if isinstance(data, str | Path):
        features, labels = load_npz(data)
        source = str(data)
    else:
        features, labels = as_arrays(data)
    if len(features) != len(labels):
        raise DataError(f"{source}: {len(features)} feature rows but {len(labels)} labels; give "
                        "one label per example", code="data_length_mismatch")
    if len(labels) == 0:
        raise DataError(f"{source}: no examples", code="shard_empty")
    return Dataset(features, labels, source)


def check_split_settings(split_name: str, alpha: float, shards_per_device: int,
                         test_fraction: float | None) -> None:
    """Refuse impossible split settings at once, before any data is read or model compiled."""
    if SPLIT_ALIASES.get(split_name, split_name) not in SPLITS:
        raise DataError(f"unknown split {split_name!r}; use one of {', '.join(SPLITS)}",
                        code="split_invalid")
    if not alpha > 0:
        raise DataError(f"the Dirichlet concentration alpha must be > 0, not {alpha}",
                        code="split_invalid")
    if shards_per_device < 1:
        raise DataError(f"shards per device must be at least 1, not {shards_per_device}",
                        code="split_invalid")
    if test_fraction is not None and not 0 < test_fraction < 1:
        raise DataError(f"the test fraction must be between 0 and 1, not {test_fraction}",
                        code="split_invalid")


def _digits(inputs: PlanInputs) -> Dataset:
    try:
        features, labels = load_digits(inputs.shape)
    except ValueError:
        raise DataError(f"{inputs.model} takes inputs shaped {_shape(inputs.shape)}, which the "
                        "bundled digits do not come in; give your own data (data=, or --data)",
                        code="data_shape_mismatch") from None
    return Dataset(features, labels, "digits")


def _check_shards(shards: list[tuple[np.ndarray, np.ndarray]], names: list[str]) -> None:
    for name, (_, labels) in zip(names, shards, strict=True):
        if len(labels) == 0:
            raise DataError(f"{name} gets no examples; use fewer devices or another split",
                            code="shard_empty")


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
