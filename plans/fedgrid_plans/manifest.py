"""Names shared by everything that writes or reads a plan manifest (roles, dtypes, graph IO names).

Kept in one place so the compiler, the validator, the executors and SPEC.md agree on spelling.
"""

from __future__ import annotations

import numpy as np

# Graph input roles.
FEATURES = "features"
LABELS = "labels"
LEARNING_RATE = "learning_rate"
PARAMETER = "parameter"
OPTIMIZER_STATE = "optimizer_state"
GLOBAL_PARAMETER = "global_parameter"
# Graph output roles.
LOSS = "loss"
METRIC = "metric"
UPDATED_PARAMETER = "updated_parameter"
UPDATED_OPTIMIZER_STATE = "updated_optimizer_state"
PREDICTION = "prediction"
# Averaging graph roles (PyGrid's iterative form avg, item, num).
AVERAGE = "average"
ITEM = "item"
COUNT = "count"
UPDATED_AVERAGE = "updated_average"

TRAIN_INPUT_ROLES = {FEATURES, LABELS, LEARNING_RATE, PARAMETER, OPTIMIZER_STATE, GLOBAL_PARAMETER}
TRAIN_OUTPUT_ROLES = {LOSS, METRIC, UPDATED_PARAMETER, UPDATED_OPTIMIZER_STATE}

# Manifest dtype names <-> numpy. The names are ONNX Runtime's tensor type names.
DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("float32"),
    "float64": np.dtype("float64"),
    "int64": np.dtype("int64"),
    "int32": np.dtype("int32"),
    "uint8": np.dtype("uint8"),
    "bool": np.dtype("bool"),
}


def parameter_input(name: str) -> str:
    return f"param/{name}"


def updated_parameter_output(name: str) -> str:
    return f"updated/param/{name}"


def momentum_input(name: str) -> str:
    return f"state/momentum/{name}"


def updated_momentum_output(name: str) -> str:
    return f"updated/state/momentum/{name}"


def global_parameter_input(name: str) -> str:
    return f"global/{name}"


def io_entry(name: str, role: str, dtype: str, shape: list, **extra) -> dict:
    """One graph input/output as the manifest lists it; ``"batch"`` in a shape is dynamic."""
    return {"name": name, "role": role, "dtype": dtype, "shape": list(shape), **extra}


def dtype_name(dtype) -> str:
    dtype = np.dtype(dtype)
    for name, known in DTYPES.items():
        if known == dtype:
            return name
    raise ValueError(f"dtype {dtype} cannot appear in a plan")
