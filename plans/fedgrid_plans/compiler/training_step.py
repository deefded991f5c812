"""The training step a plan encodes, written once as a plain PyTorch function.

The same function is (a) traced by :mod:`fedgrid_plans.compiler.export` into the ONNX graph and
(b) run eagerly as the reference that conformance vectors and the benchmark compare against, so
the graph and the reference cannot drift apart.

Step signature (all tensors, positional, in this order)::

    step(features, labels, learning_rate, *parameters, *momentum_buffers, *global_parameters)
      -> (loss, *metrics, *updated_parameters, *updated_momentum_buffers)

``momentum_buffers`` exist only when SGD momentum is non-zero, ``global_parameters`` (the model
the round started from) only when the FedProx term ``mu`` is non-zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional


class CompileError(Exception):
    """The model, loss, optimizer or metrics cannot be compiled into a plan. The message names
    the op and the layer (module path and class) responsible where one is."""


@dataclass(frozen=True)
class SGD:
    """Plain SGD as ``torch.optim.SGD`` defines it (dampening 0). Momentum buffers start at zero,
    which equals torch's "first buffer = first gradient" rule because ``0 * m + g == g``."""

    learning_rate: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False

    @classmethod
    def from_torch(cls, optimizer: torch.optim.Optimizer) -> SGD:
        if type(optimizer) is not torch.optim.SGD:
            raise CompileError(
                f"optimizer {type(optimizer).__name__} is not supported; plans support SGD "
                "(with optional momentum, weight decay, Nesterov)"
            )
        group = optimizer.param_groups[0]
        if group.get("dampening", 0):
            raise CompileError("SGD dampening is not supported in plans (use dampening=0)")
        if group.get("maximize", False):
            raise CompileError("SGD maximize=True is not supported in plans")
        return cls(
            learning_rate=float(group["lr"]),
            momentum=float(group.get("momentum", 0.0)),
            weight_decay=float(group.get("weight_decay", 0.0)),
            nesterov=bool(group.get("nesterov", False)),
        )

    def to_manifest(self) -> dict:
        return {
            "type": "sgd",
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "nesterov": self.nesterov,
        }


@dataclass(frozen=True)
class LossSpec:
    """A supported loss: how it is computed, what labels it takes, which metrics make sense."""

    name: str
    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    integer_labels: bool
    accuracy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None


def _class_accuracy(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (output.argmax(dim=1) == labels).to(torch.float32).mean()


def _binary_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return ((logits > 0) == (labels > 0.5)).to(torch.float32).mean()


LOSSES: dict[str, LossSpec] = {
    "cross_entropy": LossSpec("cross_entropy", functional.cross_entropy, True, _class_accuracy),
    # NLL expects log-probabilities from the model (e.g. a final LogSoftmax).
    "nll": LossSpec("nll", functional.nll_loss, True, _class_accuracy),
    "mse": LossSpec("mse", functional.mse_loss, False, None),
    "bce_with_logits": LossSpec(
        "bce_with_logits", functional.binary_cross_entropy_with_logits, False, _binary_accuracy
    ),
}
_LOSS_MODULES = {
    nn.CrossEntropyLoss: "cross_entropy",
    nn.NLLLoss: "nll",
    nn.MSELoss: "mse",
    nn.BCEWithLogitsLoss: "bce_with_logits",
}
METRICS = ("accuracy", "num_samples")


def resolve_loss(loss: str | nn.Module) -> LossSpec:
    """A loss given by name or as a default-configured torch loss module."""
    if isinstance(loss, nn.Module):
        name = _LOSS_MODULES.get(type(loss))
        if name is None:
            raise CompileError(
                f"loss {type(loss).__name__} is not supported; plans support {sorted(LOSSES)}"
            )
        if getattr(loss, "reduction", "mean") != "mean":
            raise CompileError(f"loss {type(loss).__name__} must use reduction='mean'")
        for attribute in ("weight", "pos_weight"):
            if getattr(loss, attribute, None) is not None:
                raise CompileError(f"loss {type(loss).__name__}: {attribute} is not supported")
        if getattr(loss, "label_smoothing", 0.0):
            raise CompileError("cross-entropy label_smoothing is not supported in plans")
        if getattr(loss, "ignore_index", -100) != -100:
            raise CompileError("a custom ignore_index is not supported in plans")
        return LOSSES[name]
    if loss not in LOSSES:
        raise CompileError(f"loss {loss!r} is not supported; plans support {sorted(LOSSES)}")
    return LOSSES[loss]


def resolve_metrics(metrics: Sequence[str], loss: LossSpec) -> tuple[str, ...]:
    resolved = tuple(dict.fromkeys(metrics))
    for metric in resolved:
        if metric not in METRICS:
            raise CompileError(f"metric {metric!r} is not supported; plans support {list(METRICS)}")
    if "accuracy" in resolved and loss.accuracy is None:
        raise CompileError(f"metric 'accuracy' is not defined for loss {loss.name!r}")
    return resolved


def build_training_step(
    model: nn.Module,
    parameter_names: Sequence[str],
    loss: LossSpec,
    optimizer: SGD,
    metrics: Sequence[str],
    fedprox_mu: float,
) -> Callable[..., tuple[torch.Tensor, ...]]:
    """The step as a function of tensors only (the model's parameters become arguments)."""
    names = list(parameter_names)
    count = len(names)
    uses_momentum = optimizer.momentum != 0.0

    def step(features, labels, learning_rate, *tensors):
        parameters = list(tensors[:count])
        rest = list(tensors[count:])
        buffers = rest[:count] if uses_momentum else []
        global_parameters = rest[count : 2 * count] if uses_momentum else rest[:count]
        with torch.enable_grad():
            output = torch.func.functional_call(model, dict(zip(names, parameters, strict=True)), (features,))
            data_loss = loss.compute(output, labels)
            objective = data_loss
            if fedprox_mu:
                # FedProx (Li et al., 2020): mu/2 * ||w - w_global||^2 keeps local models close.
                proximal = sum(((p - g) ** 2).sum() for p, g in zip(parameters, global_parameters, strict=True))
                objective = data_loss + (fedprox_mu / 2.0) * proximal
            gradients = torch.autograd.grad(objective, parameters)
        outputs = [data_loss.detach()]
        for metric in metrics:
            if metric == "accuracy":
                outputs.append(loss.accuracy(output.detach(), labels))
            elif metric == "num_samples":
                outputs.append(torch.ones(features.shape[0], dtype=torch.int64).sum())
        updated_parameters, updated_buffers = [], []
        for index, (parameter, gradient) in enumerate(zip(parameters, gradients, strict=True)):
            parameter = parameter.detach()
            if optimizer.weight_decay:
                gradient = gradient + optimizer.weight_decay * parameter
            if uses_momentum:
                buffer = optimizer.momentum * buffers[index] + gradient
                updated_buffers.append(buffer)
                gradient = gradient + optimizer.momentum * buffer if optimizer.nesterov else buffer
            updated_parameters.append(parameter - learning_rate * gradient)
        return (*outputs, *updated_parameters, *updated_buffers)

    return step


def build_forward(model: nn.Module, parameter_names: Sequence[str]):
    """Inference only: ``forward(features, *parameters) -> prediction``."""
    names = list(parameter_names)

    def forward(features, *parameters):
        return torch.func.functional_call(model, dict(zip(names, parameters, strict=True)), (features,))

    return forward
