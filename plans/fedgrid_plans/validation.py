"""Decide whether a plan file is safe and consistent enough to host, without torch or onnxruntime.

The Node calls :func:`validate_plan` on every uploaded plan (and against the checkpoint hosted
with it); a refusal is a :class:`PlanValidationError` whose ``code`` is stable for API answers
and whose message names the offending field, graph, op or parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from fedgrid_plans import manifest as names
from fedgrid_plans.op_allowlist import ALLOWED_OPS, AVERAGING_OPS
from fedgrid_plans.plan_file import (
    BATCH_DIM,
    FORMAT_NAME,
    GRAPH_NAMES,
    SUPPORTED_FORMAT_VERSIONS,
    Plan,
    PlanFormatError,
    compute_content_hash,
    sha256_hex,
)

# Stable error codes (documented in SPEC.md; the Node returns them to clients).
PLAN_MALFORMED = "plan_malformed"
PLAN_VERSION_UNSUPPORTED = "plan_version_unsupported"
PLAN_HASH_MISMATCH = "plan_hash_mismatch"
PLAN_GRAPH_INVALID = "plan_graph_invalid"
PLAN_OP_NOT_ALLOWED = "plan_op_not_allowed"
PLAN_IO_MISMATCH = "plan_io_mismatch"
PLAN_CHECKPOINT_MISMATCH = "plan_checkpoint_mismatch"
ERROR_CODES = (
    PLAN_MALFORMED,
    PLAN_VERSION_UNSUPPORTED,
    PLAN_HASH_MISMATCH,
    PLAN_GRAPH_INVALID,
    PLAN_OP_NOT_ALLOWED,
    PLAN_IO_MISMATCH,
    PLAN_CHECKPOINT_MISMATCH,
)
# Oldest and newest default-domain opset a plan may import (ONNX Runtime 1.18+ runs them all).
MIN_OPSET, MAX_OPSET = 13, 21

_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.BOOL: "bool",
}
_REQUIRED_ROLES = {
    "train": ({names.FEATURES, names.LABELS, names.LEARNING_RATE}, {names.LOSS}),
    "forward": ({names.FEATURES}, {names.PREDICTION}),
    "average": ({names.COUNT}, set()),
}
_PER_PARAMETER_ROLES = {
    "train": ((names.PARAMETER,), (names.UPDATED_PARAMETER,)),
    "forward": ((names.PARAMETER,), ()),
    "average": ((names.AVERAGE, names.ITEM), (names.UPDATED_AVERAGE,)),
}


class PlanValidationError(ValueError):
    """A plan the Node must refuse. ``code`` is one of :data:`ERROR_CODES`."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def validate_plan(data: bytes, checkpoint: Mapping[str, np.ndarray] | None = None) -> Plan:
    """Parse and check a plan file; return the :class:`Plan` or raise :class:`PlanValidationError`.

    Checks, in order: container and manifest parse; format and version; per-graph sha256 and the
    content hash; each ONNX graph well formed (``onnx.checker``), self-contained and using only
    allow-listed ops; graph inputs/outputs equal the manifest's; and, when ``checkpoint`` is given,
    that its tensor names, shapes and dtypes equal the manifest's parameters.
    """
    try:
        plan = Plan.from_bytes(data)
    except PlanFormatError as exc:
        raise PlanValidationError(PLAN_MALFORMED, str(exc)) from None
    manifest = plan.manifest
    _check_format(manifest)
    parameters = _check_parameters(manifest)
    _check_defaults(manifest)
    _check_optimizer_state(manifest, parameters)
    _check_hashes(plan)
    for graph_name, graph_bytes in plan.graphs.items():
        model = _load_graph(graph_name, graph_bytes)
        _check_ops(graph_name, model)
        _check_io(graph_name, model, manifest, parameters)
    if checkpoint is not None:
        check_checkpoint(plan, checkpoint)
    return plan


def check_checkpoint(plan: Plan, checkpoint: Mapping[str, np.ndarray], *, code: str = PLAN_CHECKPOINT_MISMATCH) -> None:
    """The checkpoint holds exactly the manifest's parameters, with their shapes and dtypes."""
    expected = {p["name"]: p for p in plan.manifest["parameters"]}
    missing = [n for n in expected if n not in checkpoint]
    extra = [n for n in checkpoint if n not in expected]
    if missing or extra:
        raise PlanValidationError(
            code,
            f"checkpoint tensors differ from the plan's parameters: missing {missing}, unexpected {extra}",
        )
    for name, spec in expected.items():
        array = np.asarray(checkpoint[name])
        if list(array.shape) != list(spec["shape"]):
            raise PlanValidationError(
                code,
                f"parameter {name!r}: checkpoint shape {list(array.shape)} != plan shape {spec['shape']}",
            )
        if array.dtype != names.DTYPES[spec["dtype"]]:
            raise PlanValidationError(
                code,
                f"parameter {name!r}: checkpoint dtype {array.dtype} != plan dtype {spec['dtype']}",
            )


def _check_format(manifest: dict) -> None:
    if manifest.get("format") != FORMAT_NAME:
        raise PlanValidationError(PLAN_MALFORMED, f"manifest 'format' must be {FORMAT_NAME!r}, got {manifest.get('format')!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise PlanValidationError(PLAN_MALFORMED, "manifest 'format_version' must be an integer")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise PlanValidationError(
            PLAN_VERSION_UNSUPPORTED,
            f"plan format version {version} is not supported (supported: {sorted(SUPPORTED_FORMAT_VERSIONS)})",
        )
    for key, kind in (("content_hash", str), ("graphs", dict), ("parameters", list), ("train", dict), ("defaults", dict)):
        if not isinstance(manifest.get(key), kind):
            raise PlanValidationError(PLAN_MALFORMED, f"manifest field {key!r} is missing or not a {kind.__name__}")


def _check_parameters(manifest: dict) -> dict[str, dict]:
    parameters: dict[str, dict] = {}
    for spec in manifest["parameters"]:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            raise PlanValidationError(PLAN_MALFORMED, f"manifest parameter entry {spec!r} has no name")
        shape = spec.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise PlanValidationError(PLAN_MALFORMED, f"parameter {spec['name']!r}: shape must be a list of non-negative integers")
        if spec.get("dtype") != "float32":
            raise PlanValidationError(PLAN_MALFORMED, f"parameter {spec['name']!r}: dtype must be 'float32'")
        if spec["name"] in parameters:
            raise PlanValidationError(PLAN_MALFORMED, f"parameter {spec['name']!r} is listed twice")
        parameters[spec["name"]] = spec
    if not parameters:
        raise PlanValidationError(PLAN_MALFORMED, "manifest lists no parameters")
    return parameters


def _check_hashes(plan: Plan) -> None:
    entries = plan.manifest["graphs"]
    unknown = [g for g in plan.graphs if g not in GRAPH_NAMES]
    if unknown:
        raise PlanValidationError(PLAN_MALFORMED, f"plan holds unknown graphs {unknown} (known: {list(GRAPH_NAMES)})")
    if set(entries) != set(plan.graphs):
        raise PlanValidationError(
            PLAN_MALFORMED,
            f"manifest 'graphs' lists {sorted(entries)} but the file holds {sorted(plan.graphs)}",
        )
    for graph_name, graph_bytes in plan.graphs.items():
        entry = entries[graph_name]
        if not isinstance(entry, dict) or entry.get("sha256") != sha256_hex(graph_bytes):
            raise PlanValidationError(
                PLAN_HASH_MISMATCH,
                f"graph {graph_name!r}: sha256 of its bytes does not match the manifest (tampered or corrupted)",
            )
        if not isinstance(plan.manifest.get(graph_name), dict):
            raise PlanValidationError(PLAN_MALFORMED, f"manifest has no {graph_name!r} section describing that graph")
    if plan.manifest["content_hash"] != compute_content_hash(plan.graphs):
        raise PlanValidationError(PLAN_HASH_MISMATCH, "manifest content_hash does not match the plan's graphs")


def _load_graph(graph_name: str, graph_bytes: bytes) -> onnx.ModelProto:
    try:
        model = onnx.load_from_string(graph_bytes)
    except Exception as exc:
        raise PlanValidationError(PLAN_GRAPH_INVALID, f"graph {graph_name!r} is not an ONNX model: {exc}") from None
    for initializer in model.graph.initializer:
        # External data would make a runtime open files named by the plan.
        if initializer.data_location == onnx.TensorProto.EXTERNAL:
            raise PlanValidationError(PLAN_GRAPH_INVALID, f"graph {graph_name!r}: initializer {initializer.name!r} uses external data")
    if model.functions:
        raise PlanValidationError(PLAN_GRAPH_INVALID, f"graph {graph_name!r} defines model-local functions; plans must be inlined")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # ValidationError, or the C++ checker's errors on hostile protobufs
        raise PlanValidationError(PLAN_GRAPH_INVALID, f"graph {graph_name!r} is not a well-formed ONNX model: {_first_line(exc)}") from None
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not MIN_OPSET <= opset.version <= MAX_OPSET:
            raise PlanValidationError(
                PLAN_GRAPH_INVALID,
                f"graph {graph_name!r} imports ONNX opset {opset.version}; plans use opsets {MIN_OPSET}..{MAX_OPSET}",
            )
    return model


def _check_ops(graph_name: str, model: onnx.ModelProto) -> None:
    allowed = AVERAGING_OPS if graph_name == "average" else ALLOWED_OPS
    for node in _all_nodes(model.graph):
        key = (node.domain or "ai.onnx", node.op_type)
        if key not in allowed:
            raise PlanValidationError(
                PLAN_OP_NOT_ALLOWED,
                f"graph {graph_name!r}: node {node.name or '<unnamed>'!r} uses op {key[0]}::{key[1]}, which is not in the plan op allow-list",
            )


def _all_nodes(graph: onnx.GraphProto):
    """Every node, including those of subgraphs held in attributes (If/Loop bodies)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from _all_nodes(subgraph)


def _check_io(graph_name: str, model: onnx.ModelProto, manifest: dict, parameters: dict[str, dict]) -> None:
    section = manifest[graph_name]
    declared = {}
    for direction in ("inputs", "outputs"):
        entries = section.get(direction)
        if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in entries):
            raise PlanValidationError(PLAN_MALFORMED, f"manifest {graph_name}.{direction} must be a list of named entries")
        for entry in entries:
            _check_entry_schema(graph_name, entry)
        declared[direction] = {e["name"]: e for e in entries}
        if len(declared[direction]) != len(entries):
            raise PlanValidationError(PLAN_MALFORMED, f"manifest {graph_name}.{direction} names an entry twice")
    initializers = {i.name for i in model.graph.initializer}
    actual = {
        "inputs": {v.name: v for v in model.graph.input if v.name not in initializers},
        "outputs": {v.name: v for v in model.graph.output},
    }
    for direction in ("inputs", "outputs"):
        if set(declared[direction]) != set(actual[direction]):
            raise PlanValidationError(
                PLAN_IO_MISMATCH,
                f"graph {graph_name!r} {direction} {sorted(actual[direction])} differ from the manifest's {sorted(declared[direction])}",
            )
        for value_name, entry in declared[direction].items():
            _check_value(graph_name, entry, actual[direction][value_name])

    # Roles: what an executor needs to find, and one entry per parameter.
    required_inputs, required_outputs = _REQUIRED_ROLES[graph_name]
    for direction, required in (("inputs", required_inputs), ("outputs", required_outputs)):
        roles = [e.get("role") for e in declared[direction].values()]
        for role in required:
            if roles.count(role) != 1:
                raise PlanValidationError(PLAN_IO_MISMATCH, f"graph {graph_name!r} needs exactly one {direction[:-1]} with role {role!r}")
    input_roles, output_roles = _PER_PARAMETER_ROLES[graph_name]
    if graph_name == "train":
        # Optional per-parameter roles: absent, or present for every parameter.
        declared_state = {e.get("parameter") for e in manifest.get("optimizer_state", []) if isinstance(e, dict)}
        has_state = any(e.get("role") == names.OPTIMIZER_STATE for e in declared["inputs"].values())
        if has_state != bool(declared_state) or (has_state and declared_state != set(parameters)):
            raise PlanValidationError(
                PLAN_IO_MISMATCH,
                "manifest 'optimizer_state' and the training graph's optimizer_state inputs must both cover every parameter or both be empty",
            )
        if has_state:
            input_roles += (names.OPTIMIZER_STATE,)
            output_roles += (names.UPDATED_OPTIMIZER_STATE,)
        if any(e.get("role") == names.GLOBAL_PARAMETER for e in declared["inputs"].values()):
            input_roles += (names.GLOBAL_PARAMETER,)
        known = names.TRAIN_INPUT_ROLES | names.TRAIN_OUTPUT_ROLES
        for entry in (*declared["inputs"].values(), *declared["outputs"].values()):
            if entry.get("role") not in known:
                raise PlanValidationError(PLAN_IO_MISMATCH, f"graph 'train': {entry['name']!r} has unknown role {entry.get('role')!r}")
            if entry.get("role") == names.METRIC and entry.get("metric") not in ("accuracy", "num_samples"):
                raise PlanValidationError(PLAN_IO_MISMATCH, f"graph 'train': unknown metric {entry.get('metric')!r}")
    for direction, roles in (("inputs", input_roles), ("outputs", output_roles)):
        for role in roles:
            entries = [e for e in declared[direction].values() if e.get("role") == role]
            covered = [e.get("parameter") for e in entries]
            if sorted(covered, key=str) != sorted(parameters):
                raise PlanValidationError(
                    PLAN_IO_MISMATCH,
                    f"graph {graph_name!r}: {direction} with role {role!r} cover {covered}, expected each parameter once: {list(parameters)}",
                )
            for entry in entries:
                if entry["shape"] != parameters[entry["parameter"]]["shape"]:  # coverage checked above
                    raise PlanValidationError(
                        PLAN_IO_MISMATCH,
                        f"graph {graph_name!r}: {entry['name']!r} has shape {entry['shape']}, parameter "
                        f"{entry['parameter']!r} has {parameters[entry['parameter']]['shape']}",
                    )


def _check_entry_schema(graph_name: str, entry: dict) -> None:
    """Types of one IO entry, before anything relies on them."""
    name = entry["name"]
    if not isinstance(entry.get("role"), str) or not isinstance(entry.get("dtype"), str):
        raise PlanValidationError(PLAN_MALFORMED, f"manifest {graph_name} entry {name!r}: 'role' and 'dtype' must be strings")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(
        d == BATCH_DIM or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape
    ):
        raise PlanValidationError(
            PLAN_MALFORMED, f"manifest {graph_name} entry {name!r}: 'shape' must list non-negative integers or {BATCH_DIM!r}"
        )
    for key in ("parameter", "metric"):
        if key in entry and not isinstance(entry[key], str):
            raise PlanValidationError(PLAN_MALFORMED, f"manifest {graph_name} entry {name!r}: {key!r} must be a string")


def _check_defaults(manifest: dict) -> None:
    """The training defaults every executor falls back on."""
    defaults = manifest["defaults"]

    def positive_int(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    problems = []
    if not positive_int(defaults.get("batch_size")):
        problems.append("batch_size must be an integer >= 1")
    if not positive_int(defaults.get("epochs")):
        problems.append("epochs must be an integer >= 1")
    if defaults.get("max_updates") is not None and not positive_int(defaults.get("max_updates")):
        problems.append("max_updates must be null or an integer >= 1")
    rate = defaults.get("learning_rate")
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not rate >= 0 or rate == float("inf"):
        problems.append("learning_rate must be a finite number >= 0")
    if not isinstance(defaults.get("shuffle", True), bool):
        problems.append("shuffle must be a boolean")
    if problems:
        raise PlanValidationError(PLAN_MALFORMED, "manifest defaults: " + "; ".join(problems))


def _check_optimizer_state(manifest: dict, parameters: dict[str, dict]) -> None:
    state = manifest.get("optimizer_state", [])
    if not isinstance(state, list):
        raise PlanValidationError(PLAN_MALFORMED, "manifest 'optimizer_state' must be a list")
    for entry in state:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("parameter"), str)
            or entry["parameter"] not in parameters
            or entry.get("shape") != parameters[entry["parameter"]]["shape"]
            or entry.get("dtype") != "float32"
            or entry.get("init") != "zeros"
        ):
            raise PlanValidationError(
                PLAN_MALFORMED,
                f"manifest optimizer_state entry {entry!r} must name a parameter and repeat its float32 shape, with init 'zeros'",
            )


def _check_value(graph_name: str, entry: dict, value: onnx.ValueInfoProto) -> None:
    tensor_type = value.type.tensor_type
    dtype = _ONNX_DTYPES.get(tensor_type.elem_type)
    if entry.get("dtype") != dtype:
        raise PlanValidationError(
            PLAN_IO_MISMATCH,
            f"graph {graph_name!r}: {value.name!r} is {dtype or tensor_type.elem_type} in the graph, {entry.get('dtype')!r} in the manifest",
        )
    shape = entry.get("shape")
    if not isinstance(shape, list):
        raise PlanValidationError(PLAN_MALFORMED, f"manifest entry {value.name!r} has no shape list")
    graph_dims = list(tensor_type.shape.dim)
    if len(graph_dims) != len(shape):
        raise PlanValidationError(
            PLAN_IO_MISMATCH,
            f"graph {graph_name!r}: {value.name!r} has rank {len(graph_dims)} in the graph, {len(shape)} in the manifest ({shape})",
        )
    for axis, (declared, dim) in enumerate(zip(shape, graph_dims, strict=True)):
        if declared == BATCH_DIM:
            if dim.HasField("dim_value"):
                raise PlanValidationError(
                    PLAN_IO_MISMATCH,
                    f"graph {graph_name!r}: {value.name!r} axis {axis} is fixed to {dim.dim_value} in the graph but the manifest says it is the dynamic batch dimension",
                )
        elif not isinstance(declared, int) or isinstance(declared, bool) or not dim.HasField("dim_value") or dim.dim_value != declared:
            got = dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?")
            raise PlanValidationError(
                PLAN_IO_MISMATCH,
                f"graph {graph_name!r}: {value.name!r} axis {axis} is {got} in the graph, {declared!r} in the manifest",
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
