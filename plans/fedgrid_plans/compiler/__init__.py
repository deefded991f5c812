"""Compile a PyTorch model, loss and optimizer into a Fedgrid plan (needs torch; Nodes never import this).

Three lines::

    from fedgrid_plans.compiler import compile_plan, SGD
    compiled = compile_plan(model, loss="cross_entropy", optimizer=SGD(0.1), example_batch=(x, y))
    open("model.fgplan", "wb").write(compiled.to_bytes())
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedgrid_plans import manifest as names
from fedgrid_plans.averaging import build_averaging_graph
from fedgrid_plans.compiler.export import trace_to_onnx
from fedgrid_plans.compiler.layer_attribution import LayerIndex
from fedgrid_plans.compiler.training_step import (
    SGD,
    CompileError,
    LossSpec,
    build_forward,
    build_training_step,
    resolve_loss,
    resolve_metrics,
)
from fedgrid_plans.op_allowlist import OPSET_VERSION
from fedgrid_plans.plan_file import BATCH_DIM, FORMAT_NAME, FORMAT_VERSION, Plan

__all__ = ["SGD", "CompileError", "CompiledPlan", "compile_plan"]

PRODUCER_VERSION = "0.1.0"


@dataclass
class CompiledPlan:
    """A compiled plan plus what a researcher hosts with it (the initial checkpoint)."""

    plan: Plan
    parameter_names: list[str]
    initial_parameters: dict[str, np.ndarray]
    loss: LossSpec
    optimizer: SGD
    metrics: tuple[str, ...]
    fedprox_mu: float
    # The eager PyTorch function the training graph was traced from: the reference run for
    # conformance vectors and the benchmark. Same signature as the graph (see training_step).
    step_function: Callable[..., tuple[torch.Tensor, ...]]
    forward_function: Callable[..., torch.Tensor]

    @property
    def manifest(self) -> dict:
        return self.plan.manifest

    def to_bytes(self) -> bytes:
        """The plan file to host."""
        return self.plan.to_bytes()

    def checkpoint(self) -> dict[str, np.ndarray]:
        """The model's initial parameters (float32), keyed by manifest name, in checkpoint order."""
        return {name: self.initial_parameters[name].copy() for name in self.parameter_names}


def compile_plan(
    model: nn.Module,
    loss: str | nn.Module = "cross_entropy",
    optimizer: SGD | torch.optim.Optimizer | None = None,
    example_batch: tuple | None = None,
    metrics: Sequence[str] | None = None,
    *,
    fedprox_mu: float = 0.0,
    name: str | None = None,
    batch_size: int = 32,
    epochs: int = 1,
    max_updates: int | None = None,
    include_forward: bool = True,
    include_averaging: bool = True,
) -> CompiledPlan:
    """Trace one training step of ``model`` and package it as a plan.

    ``example_batch`` is ``(features, labels)`` (numpy or torch); only its dtypes and non-batch
    dimensions matter, the batch dimension of the plan is dynamic. ``metrics`` defaults to
    ``("accuracy", "num_samples")`` for classification losses and ``("num_samples",)`` otherwise.
    """
    if example_batch is None or len(example_batch) != 2:
        raise CompileError("example_batch must be (features, labels)")
    loss_spec = resolve_loss(loss)
    sgd = _resolve_optimizer(optimizer)
    if metrics is None:
        metrics = ("accuracy", "num_samples") if loss_spec.accuracy else ("num_samples",)
    metric_names = resolve_metrics(metrics, loss_spec)
    if fedprox_mu < 0:
        raise CompileError("fedprox_mu must be >= 0")
    _check_model(model)
    features, labels = _example_tensors(example_batch, loss_spec)
    model.train()

    parameter_names = [n for n, _ in model.named_parameters()]
    if not parameter_names:
        raise CompileError("the model has no parameters to train")
    parameters = [p.detach().clone().requires_grad_(True) for _, p in model.named_parameters()]
    uses_momentum = sgd.momentum != 0.0
    buffers = [torch.zeros_like(p.detach()) for p in parameters] if uses_momentum else []
    global_parameters = [p.detach().clone() for p in parameters] if fedprox_mu else []
    learning_rate = torch.tensor(sgd.learning_rate, dtype=torch.float32)
    layers = LayerIndex(model, features)

    step = build_training_step(model, parameter_names, loss_spec, sgd, metric_names, fedprox_mu)
    train_io = _train_io(parameters, parameter_names, features, labels, metric_names, uses_momentum, fedprox_mu)
    train_graph = trace_to_onnx(
        step,
        [features, labels, learning_rate, *parameters, *buffers, *global_parameters],
        batched_args=(0, 1),
        input_names=[entry["name"] for entry in train_io["inputs"]],
        output_names=[entry["name"] for entry in train_io["outputs"]],
        layers=layers,
    )
    graphs = {"train": train_graph}
    sections = {"train": train_io}

    forward = build_forward(model, parameter_names)
    if include_forward:
        with torch.no_grad():
            prediction = forward(features, *parameters)
        forward_io = {
            "inputs": [
                names.io_entry("features", names.FEATURES, "float32", _batched(features)),
                *[_parameter_entry(n, p, names.parameter_input(n), names.PARAMETER) for n, p in zip(parameter_names, parameters, strict=True)],
            ],
            "outputs": [names.io_entry("prediction", names.PREDICTION, "float32", _batched(prediction))],
        }
        graphs["forward"] = trace_to_onnx(
            forward,
            [features, *[p.detach() for p in parameters]],
            batched_args=(0,),
            input_names=[entry["name"] for entry in forward_io["inputs"]],
            output_names=["prediction"],
            layers=layers,
        )
        sections["forward"] = forward_io

    parameter_specs = [
        {"name": n, "dtype": "float32", "shape": list(p.shape)}
        for n, p in zip(parameter_names, parameters, strict=True)
    ]
    if include_averaging:
        graphs["average"], sections["average"] = build_averaging_graph(parameter_specs)

    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": name or type(model).__name__,
        "content_hash": "",
        "graphs": {graph: {"opset": OPSET_VERSION} for graph in graphs},
        "parameters": parameter_specs,
        "optimizer_state": [
            {
                "name": f"momentum/{n}",
                "parameter": n,
                "dtype": "float32",
                "shape": list(p.shape),
                "init": "zeros",
            }
            for n, p in zip(parameter_names, parameters, strict=True)
        ]
        if uses_momentum
        else [],
        "training": {
            "loss": loss_spec.name,
            "optimizer": sgd.to_manifest(),
            "fedprox_mu": float(fedprox_mu),
            "metrics": list(metric_names),
        },
        "defaults": {
            "batch_size": int(batch_size),
            "epochs": int(epochs),
            "max_updates": None if max_updates is None else int(max_updates),
            "learning_rate": float(sgd.learning_rate),
            "shuffle": True,
        },
        **sections,
        "producer": {"name": "fedgrid_plans", "version": PRODUCER_VERSION, "torch": torch.__version__.split("+")[0]},
    }
    plan = Plan(manifest=manifest, graphs=graphs).sealed()
    return CompiledPlan(
        plan=plan,
        parameter_names=parameter_names,
        initial_parameters={n: p.detach().numpy().astype(np.float32, copy=True) for n, p in zip(parameter_names, parameters, strict=True)},
        loss=loss_spec,
        optimizer=sgd,
        metrics=metric_names,
        fedprox_mu=float(fedprox_mu),
        step_function=step,
        forward_function=forward,
    )


def _resolve_optimizer(optimizer) -> SGD:
    if optimizer is None:
        return SGD()
    if isinstance(optimizer, SGD):
        return optimizer
    if isinstance(optimizer, torch.optim.Optimizer):
        return SGD.from_torch(optimizer)
    raise CompileError(f"optimizer {optimizer!r} is not supported; pass fedgrid_plans.compiler.SGD or torch.optim.SGD")


def _check_model(model: nn.Module) -> None:
    """Refuse what a plan cannot carry, naming the layer: buffers, non-float32 or frozen params."""
    if not isinstance(model, nn.Module):
        raise CompileError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for module_name, module in model.named_modules():
        label = f"{module_name or '<root>'} ({type(module).__name__})"
        local_buffers = [n for n, b in module.named_buffers(recurse=False) if b is not None]
        if local_buffers:
            raise CompileError(
                f"layer {label} has buffers {local_buffers} (e.g. running statistics); plans carry "
                "only trainable parameters, so use a stateless layer (GroupNorm, LayerNorm) instead"
            )
        for parameter_name, parameter in module.named_parameters(recurse=False):
            if parameter.dtype != torch.float32:
                raise CompileError(f"layer {label}: parameter {parameter_name} is {parameter.dtype}, plans train float32")
            if not parameter.requires_grad:
                raise CompileError(f"layer {label}: parameter {parameter_name} is frozen; plans train every parameter")


def _example_tensors(example_batch, loss: LossSpec) -> tuple[torch.Tensor, torch.Tensor]:
    features = torch.as_tensor(np.asarray(example_batch[0]), dtype=torch.float32)
    label_dtype = torch.int64 if loss.integer_labels else torch.float32
    labels = torch.as_tensor(np.asarray(example_batch[1])).to(label_dtype)
    if features.shape[0] != labels.shape[0]:
        raise CompileError("example_batch features and labels differ in batch size")
    # A batch of one would let the tracer specialise the batch dimension to 1.
    while features.shape[0] < 2:
        features, labels = torch.cat([features, features]), torch.cat([labels, labels])
    return features, labels


def _batched(tensor: torch.Tensor) -> list:
    return [BATCH_DIM, *list(tensor.shape[1:])]


def _parameter_entry(name: str, parameter: torch.Tensor, graph_name: str, role: str) -> dict:
    return names.io_entry(graph_name, role, "float32", list(parameter.shape), parameter=name)


def _train_io(parameters, parameter_names, features, labels, metrics, uses_momentum, fedprox_mu) -> dict:
    inputs = [
        names.io_entry("features", names.FEATURES, "float32", _batched(features)),
        names.io_entry("labels", names.LABELS, "int64" if labels.dtype == torch.int64 else "float32", _batched(labels)),
        names.io_entry("learning_rate", names.LEARNING_RATE, "float32", []),
    ]
    pairs = list(zip(parameter_names, parameters, strict=True))
    inputs += [_parameter_entry(n, p, names.parameter_input(n), names.PARAMETER) for n, p in pairs]
    if uses_momentum:
        inputs += [_parameter_entry(n, p, names.momentum_input(n), names.OPTIMIZER_STATE) for n, p in pairs]
    if fedprox_mu:
        inputs += [_parameter_entry(n, p, names.global_parameter_input(n), names.GLOBAL_PARAMETER) for n, p in pairs]
    outputs = [names.io_entry("loss", names.LOSS, "float32", [])]
    for metric in metrics:
        dtype = "int64" if metric == "num_samples" else "float32"
        outputs.append(names.io_entry(metric, names.METRIC, dtype, [], metric=metric))
    outputs += [_parameter_entry(n, p, names.updated_parameter_output(n), names.UPDATED_PARAMETER) for n, p in pairs]
    if uses_momentum:
        outputs += [_parameter_entry(n, p, names.updated_momentum_output(n), names.UPDATED_OPTIMIZER_STATE) for n, p in pairs]
    return {"inputs": inputs, "outputs": outputs}
