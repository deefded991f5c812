"""Trace a step function with ``make_fx`` (symbolic batch) and export it to ONNX bytes."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Callable, Sequence

import onnx
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from fedgrid_plans.compiler.decompositions import UnsupportedConvolution, decomposition_table
from fedgrid_plans.compiler.layer_attribution import LayerIndex, failing_aten_op
from fedgrid_plans.compiler.training_step import CompileError
from fedgrid_plans.op_allowlist import ALLOWED_OPS, OPSET_VERSION


def trace_to_onnx(
    function: Callable,
    example_args: Sequence[torch.Tensor],
    batched_args: Sequence[int],
    input_names: Sequence[str],
    output_names: Sequence[str],
    layers: LayerIndex,
) -> bytes:
    """Trace ``function`` and export it; dim 0 of each arg in ``batched_args`` stays dynamic."""
    try:
        with _quiet():
            graph_module = make_fx(
                function, tracing_mode="symbolic", decomposition_table=decomposition_table()
            )(*example_args)
    except UnsupportedConvolution as exc:
        raise CompileError(
            f"op aten.convolution_backward is not supported here, {layers.describe('aten.convolution.default')}: {exc}"
        ) from None
    except CompileError:
        raise
    except Exception as exc:
        op = failing_aten_op(exc) or "unknown op"
        raise CompileError(f"tracing the training step failed at {op} ({layers.describe(op)}): {exc}") from exc

    batch = torch.export.Dim("batch", min=1)
    dynamic_shapes = tuple({0: batch} if i in batched_args else None for i in range(len(example_args)))
    try:
        with _quiet():
            program = torch.onnx.export(
                graph_module,
                tuple(example_args),
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                input_names=list(input_names),
                output_names=list(output_names),
                opset_version=OPSET_VERSION,
                optimize=True,
                verbose=False,
                report=False,
            )
    except Exception as exc:
        op = failing_aten_op(exc)
        if op is None:
            raise CompileError(f"ONNX export of the training step failed: {_first_line(exc)}") from exc
        raise CompileError(
            f"op {op} cannot be exported to ONNX, {layers.describe(op)}; "
            "replace that layer or op with a supported one (see plans/SPEC.md)"
        ) from None

    model = program.model_proto
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    _strip_volatile_metadata(model)
    _check_allowed(model, graph_module, layers)
    return model.SerializeToString()


def _strip_volatile_metadata(model: onnx.ModelProto) -> None:
    """The exporter attaches stack traces (with local file paths) and versions to nodes; dropped
    so the same model compiles to the same bytes, and the same content hash, on every machine."""
    model.producer_name = "fedgrid_plans"
    model.producer_version = ""
    model.doc_string = ""
    del model.metadata_props[:]
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        value.doc_string = ""
        del value.metadata_props[:]


def _check_allowed(model: onnx.ModelProto, graph_module, layers: LayerIndex) -> None:
    """Refuse at compile time what a Node would refuse at hosting time."""
    fx_targets = {n.name: str(n.target) for n in graph_module.graph.nodes if n.op == "call_function"}
    for node in model.graph.node:
        if (node.domain or "ai.onnx", node.op_type) not in ALLOWED_OPS:
            aten_op = _aten_op_of(node.name, fx_targets)
            origin = f"exported from {aten_op}, {layers.describe(aten_op)}" if aten_op else "origin unknown"
            raise CompileError(
                f"the exported graph uses ONNX op {node.domain or 'ai.onnx'}::{node.op_type} ({origin}), "
                "which is outside the plan op allow-list (fedgrid_plans.op_allowlist); "
                "replace that layer or op with a supported one"
            )


def _aten_op_of(onnx_node_name: str, fx_targets: dict[str, str]) -> str | None:
    """The exporter names ONNX nodes ``node_<fx node>`` or ``node_<fx node>__<n>``."""
    name = re.sub(r"__\d+$", "", onnx_node_name.removeprefix("node_"))
    return fx_targets.get(name)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextlib.contextmanager
def _quiet():
    """The exporter prints progress and warns about optional packages (torchvision)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
