"""Does a device's data fit the plan it is about to run? Checked before ONNX Runtime sees it.

Data of the wrong shape, or labels outside the model's classes, used to surface as an ONNX Runtime
traceback from deep inside a training step (or, for labels, as a silently wrong loss). The plan's
manifest says what it takes, so the mismatch can be named in one line: the expected per-sample
shape and the number of classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedgrid_plans import manifest as names


class DataMismatch(ValueError):
    """The data does not fit the plan: the message says what the plan expects."""


def check_training_data(plan_manifest: dict[str, Any], features: np.ndarray,
                        labels: np.ndarray) -> None:
    """Raise :class:`DataMismatch` unless ``features``/``labels`` fit the plan's training graph."""
    model = plan_manifest.get("name") or "the plan"
    inputs = {entry["role"]: entry for entry in plan_manifest["train"]["inputs"]}
    features_entry, labels_entry = inputs[names.FEATURES], inputs[names.LABELS]
    _check_sample_shape(model, "features", features, features_entry)
    _check_sample_shape(model, "labels", labels, labels_entry)
    if np.dtype(names.DTYPES[labels_entry["dtype"]]).kind in "iu":
        _check_classes(model, labels, number_of_classes(plan_manifest))


def number_of_classes(plan_manifest: dict[str, Any]) -> int | None:
    """The width of the forward graph's prediction for a classifier; None when not stated."""
    if plan_manifest.get("training", {}).get("loss") not in ("cross_entropy", "nll"):
        return None
    for entry in plan_manifest.get("forward", {}).get("outputs", []):
        shape = entry.get("shape") or []
        if entry.get("role") == names.PREDICTION and len(shape) == 2 and isinstance(shape[1], int):
            return shape[1]
    return None


def _per_sample(shape) -> tuple:
    return tuple(shape[1:])


def _check_sample_shape(model: str, what: str, array: np.ndarray, entry: dict[str, Any]) -> None:
    expected = _per_sample(entry["shape"])
    if not all(isinstance(d, int) for d in expected):
        return  # a dynamic dimension besides the batch: the graph takes any size there
    if array.shape[1:] == expected:
        return
    wanted = f"(n, {', '.join(map(str, expected))})" if expected else "(n,)"
    hint = ""
    if int(np.prod(array.shape[1:], dtype=np.int64)) == int(np.prod(expected, dtype=np.int64)):
        hint = f" (reshape them with .reshape(len({what}), {', '.join(map(str, expected))}))" \
            if expected else f" (flatten them with .reshape(len({what})))"
    raise DataMismatch(f"{model} expects {what} shaped {wanted}, got {tuple(array.shape)}{hint}")


def _check_classes(model: str, labels: np.ndarray, classes: int | None) -> None:
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise DataMismatch(f"{model} expects integer class labels"
                               + (f" 0..{classes - 1}" if classes else "")
                               + f", got non-integer values such as {_first_bad(labels)}")
    elif labels.dtype.kind not in "iub":
        raise DataMismatch(f"{model} expects integer class labels, got {labels.dtype} values")
    if classes is None:
        return
    outside = (labels < 0) | (labels >= classes)
    if np.any(outside):
        found = np.unique(labels[outside])
        shown = ", ".join(str(_plain(v)) for v in found[:5]) + (", ..." if len(found) > 5 else "")
        raise DataMismatch(f"{model} has {classes} classes: labels must be 0..{classes - 1}, "
                           f"found {shown} ({int(outside.sum())} of {len(labels)} labels)")


def _first_bad(labels: np.ndarray) -> Any:
    bad = labels[~np.isfinite(labels) | (labels != np.round(labels))]
    return _plain(bad.flat[0])


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return int(value) if isinstance(value, float) and value.is_integer() else value
