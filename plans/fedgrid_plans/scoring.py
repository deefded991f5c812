"""Scoring a checkpoint on labelled examples with the plan's forward graph (pure numpy, no database).

The forward graph gives the model's raw output (logits for classification, plans/SPEC.md §2.2);
the plan's loss (`manifest.training.loss`) says how to read it:

- `cross_entropy`: logits, class-index labels; loss = mean(logsumexp(z) − z[y]);
- `nll`: log-probabilities, class-index labels; loss = mean(−z[y]);
- `bce_with_logits`: logits, {0,1} targets of the output's shape; loss over all elements;
- `mse`: any output, float targets of its shape; no accuracy.

Accuracy is the training graph's own definition: argmax == label, or for BCE `z > 0` == `y > 0.5`
over all elements. The Node scores each checkpoint on a held-out set with it; the Python SDK
scores a checkpoint on a device's data with it for an evaluation assignment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedgrid_plans import manifest as names
from fedgrid_plans.executor import PlanExecutor

# Rows per forward run: bounds the memory of a large test set's logits.
SCORE_BATCH = 1024
CLASS_INDEX_LOSSES = ("cross_entropy", "nll")
LOSSES = ("cross_entropy", "nll", "bce_with_logits", "mse")


@dataclass(frozen=True)
class ForwardSpec:
    """What a plan's forward graph takes and gives, without the batch dimension."""

    feature_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    class_index_labels: bool  # int64 class indices (else float targets of the output's shape)
    loss: str | None  # one of LOSSES, or None when the plan names another

    @property
    def classes(self) -> int | None:
        return self.output_shape[-1] if self.class_index_labels and self.output_shape else None


def forward_spec(manifest: Mapping[str, Any]) -> ForwardSpec | None:
    """The plan's forward graph as scoring sees it, or None when the plan has none."""
    forward = manifest.get("forward")
    if not forward:
        return None
    features = next(e for e in forward["inputs"] if e["role"] == names.FEATURES)
    output = forward["outputs"][0]
    labels = next(e for e in manifest["train"]["inputs"] if e["role"] == names.LABELS)
    loss = (manifest.get("training") or {}).get("loss")
    return ForwardSpec(
        feature_shape=tuple(features["shape"][1:]),
        output_shape=tuple(output["shape"][1:]),
        class_index_labels=labels["dtype"] in ("int64", "int32"),
        loss=loss if loss in LOSSES else None,
    )


def score(executor: PlanExecutor, parameters: Mapping[str, np.ndarray], features: np.ndarray,
          labels: np.ndarray, spec: ForwardSpec) -> dict[str, float | int]:
    """``{"accuracy", "loss", "num_samples"}`` of ``parameters`` on the examples (accuracy for
    classification only, loss when the plan's loss is known)."""
    count = len(features)
    loss_sum = 0.0
    correct = 0.0
    elements = 0  # what accuracy and element-wise losses are averaged over
    for begin in range(0, count, SCORE_BATCH):
        outputs = np.asarray(executor.predict(parameters, features[begin:begin + SCORE_BATCH]),
                             dtype=np.float64)
        targets = labels[begin:begin + SCORE_BATCH]
        if spec.class_index_labels:
            flat = outputs.reshape(len(outputs), -1)
            index = np.asarray(targets, dtype=np.int64)
            picked = flat[np.arange(len(flat)), index]
            correct += float((flat.argmax(axis=1) == index).sum())
            elements += len(flat)
            if spec.loss == "cross_entropy":
                top = flat.max(axis=1)
                log_sum = top + np.log(np.exp(flat - top[:, None]).sum(axis=1))
                loss_sum += float((log_sum - picked).sum())
            elif spec.loss == "nll":
                loss_sum += float(-picked.sum())
        else:
            targets = np.asarray(targets, dtype=np.float64).reshape(outputs.shape)
            elements += outputs.size
            if spec.loss == "bce_with_logits":
                correct += float(((outputs > 0) == (targets > 0.5)).sum())
                loss_sum += float((np.maximum(outputs, 0) - outputs * targets
                                   + np.log1p(np.exp(-np.abs(outputs)))).sum())
            elif spec.loss == "mse":
                loss_sum += float(((outputs - targets) ** 2).sum())
    result: dict[str, float | int] = {"num_samples": count}
    if spec.class_index_labels or spec.loss == "bce_with_logits":
        result["accuracy"] = correct / max(elements, 1)
    if spec.loss is not None:
        result["loss"] = loss_sum / max(elements, 1)
    return result
