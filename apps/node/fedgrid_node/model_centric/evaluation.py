"""`evaluation-set`: a researcher's held-out test set for a hosted model, checked against its plan.

The set is a safetensors file with exactly two tensors, `features` and `labels`, one row per
example: binary, never JSON floats. It must fit the plan's forward graph (plans/SPEC.md §2.2):
features of the plan's feature shape, and labels the plan's loss can read (class indices within
the model's outputs, or float targets of the output's shape). Each refusal has its own code, so
the researcher knows what to fix; nothing is stored unless the whole set passes.

Storing the set schedules the scorer (cycles/held_out.py), which scores every checkpoint (the
hosted one too) on it in the background; the answer does not wait for any score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import delete, func, select

from fedgrid_plans import tensors
from fedgrid_plans.plan_file import Plan as PlanFile
from fedgrid_plans.scoring import ForwardSpec, forward_spec
from fedgrid_protocol.errors import ApiError

from ..cycles.engine import CycleEngine
from ..cycles.held_out import evaluation_plan
from ..db.models import Checkpoint, EvaluationSet, Model

# The Node keeps a process's set in memory to score each checkpoint, so it is bounded on its own
# (below the default request body limit).
MAX_EVALUATION_SET_BYTES = 32 * 1024 * 1024


def plan_forward_spec(session, process_id: int) -> ForwardSpec:
    spec = forward_spec(PlanFile.from_bytes(evaluation_plan(session, process_id)).manifest)
    if spec is None:
        raise ApiError("plan_not_evaluable",
                       "the model's plan has no forward graph, so checkpoints cannot be scored; "
                       "compile it with include_forward=True and host a new version", 400)
    return spec


def _invalid(reason: str, message: str) -> ApiError:
    return ApiError("evaluation_set_invalid", message, 400, details={"reason": reason})


def _mismatch(field: str, message: str, **details: Any) -> ApiError:
    return ApiError("evaluation_set_mismatch", message, 400, details={"field": field, **details})


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(["batch", *map(str, shape)]) + "]"


def check_evaluation_set(data: bytes, spec: ForwardSpec) -> int:
    """Refuse a set that cannot be scored with the plan (coded 4xx); returns its example count."""
    if len(data) > MAX_EVALUATION_SET_BYTES:
        raise ApiError("evaluation_set_too_large",
                       f"the evaluation set is {len(data)} bytes; the Node takes at most "
                       f"{MAX_EVALUATION_SET_BYTES} (score a sample of the test set)", 413,
                       details={"limit_bytes": MAX_EVALUATION_SET_BYTES})
    try:
        decoded = tensors.decode(data)
    except tensors.TensorFormatError as exc:
        raise _invalid("not_safetensors", f"the evaluation set is not a safetensors file: {exc}") from None
    if set(decoded) != {"features", "labels"}:
        raise _invalid("tensor_names", "the evaluation set must hold exactly the tensors "
                       f"'features' and 'labels', not {sorted(decoded)}")
    features, labels = decoded["features"], decoded["labels"]
    if features.ndim == 0 or labels.ndim == 0 or len(features) == 0:
        raise _invalid("empty", "the evaluation set needs at least one example (one row each in "
                       "'features' and 'labels')")
    if len(features) != len(labels):
        raise _invalid("lengths", f"'features' has {len(features)} rows but 'labels' has "
                       f"{len(labels)}: one label per example")
    if features.dtype.kind != "f":
        raise _mismatch("features", f"'features' must be floating point, not {features.dtype}")
    if tuple(features.shape[1:]) != spec.feature_shape:
        raise _mismatch("features", f"'features' has shape {list(features.shape)}; the plan "
                        f"takes {_shape(spec.feature_shape)}",
                        expected=["batch", *spec.feature_shape])
    if not np.isfinite(features).all():
        raise _invalid("not_finite", "'features' holds NaN or infinity")
    if spec.class_index_labels:
        if labels.dtype.kind not in "iu" or labels.ndim != 1:
            raise _mismatch("labels", "'labels' must be class indices: integers of shape "
                            f"[batch], not {labels.dtype} {list(labels.shape)}")
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= spec.classes:
            raise _mismatch("labels", f"'labels' holds class {low if low < 0 else high}; the "
                            f"model has {spec.classes} classes (0 to {spec.classes - 1})",
                            classes=spec.classes)
    else:
        if labels.dtype.kind != "f" or tuple(labels.shape[1:]) != spec.output_shape:
            raise _mismatch("labels", "'labels' must be float targets shaped like the model's "
                            f"output {_shape(spec.output_shape)}, not {labels.dtype} "
                            f"{list(labels.shape)}", expected=["batch", *spec.output_shape])
        if not np.isfinite(labels).all():
            raise _invalid("not_finite", "'labels' holds NaN or infinity")
    return len(features)


def store_evaluation_set(session, process_id: int, data: bytes) -> int:
    """Check the set and put it in place of the process's current one (same transaction);
    returns its example count."""
    num_samples = check_evaluation_set(bytes(data), plan_forward_spec(session, process_id))
    session.execute(delete(EvaluationSet).where(EvaluationSet.process_id == process_id))
    session.add(EvaluationSet(process_id=process_id, data=bytes(data), num_samples=num_samples))
    return num_samples


def upload_evaluation_set(events, data: dict[str, Any]) -> dict[str, Any]:
    engine: CycleEngine = events.engine
    with events.db.session() as session:
        process = events.find_process(session, data.get("name"), data.get("version"))
        process_id, name, version = process.id, process.name, process.version
        num_samples = store_evaluation_set(session, process_id, data["evaluation_set"])
        checkpoints = session.scalar(
            select(func.count()).select_from(Checkpoint)
            .join(Model, Model.id == Checkpoint.model_id)
            .where(Model.process_id == process_id)
        )
    engine.held_out.schedule(process_id)  # after the commit: the scorer reads the new set
    return {"status": "success", "model": name, "version": version, "num_samples": num_samples,
            "checkpoints_to_score": checkpoints}
