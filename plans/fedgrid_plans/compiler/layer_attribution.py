"""Which layer of a model issued which aten op, so compile errors can name the layer.

``make_fx`` keeps no module information for the ops it records (and none at all for backward
ops), so the compiler runs the model's forward once eagerly under a dispatch mode, with hooks
tracking which submodule is executing, and keeps ``op name -> layers``. A failing backward op
(``max_pool2d_with_indices_backward``) is matched to the layers whose forward issued its forward
counterpart (``max_pool2d_with_indices``).
"""

from __future__ import annotations

import re
from collections import defaultdict

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

_BACKWARD_SUFFIXES = ("_backward_data", "_backward_input", "_backward_weight", "_backward")


class _RecordOps(TorchDispatchMode):
    def __init__(self, stack: list[str], ops: dict[str, set[str]]):
        super().__init__()
        self.stack = stack
        self.ops = ops

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__].add(self.stack[-1] if self.stack else "")
        return func(*args, **(kwargs or {}))


class LayerIndex:
    """``op name -> {"features.0 (Conv2d)", ...}`` recorded from one eager forward pass."""

    def __init__(self, model: nn.Module, features: torch.Tensor):
        self.ops: dict[str, set[str]] = defaultdict(set)
        stack: list[str] = []
        handles = []

        # Hooks must return None: a forward hook's return value replaces the layer's output.
        def enter(label: str):
            def hook(_module, _args) -> None:
                stack.append(label)

            return hook

        def leave(_module, _args, _output) -> None:
            stack.pop()

        for name, module in model.named_modules():
            label = f"{name or '<root>'} ({type(module).__name__})"
            handles.append(module.register_forward_pre_hook(enter(label)))
            handles.append(module.register_forward_hook(leave))
        try:
            with torch.no_grad(), _RecordOps(stack, self.ops):
                model(features)
        except Exception:  # attribution is best effort; the compile error still names the op
            self.ops.clear()
        finally:
            for handle in handles:
                handle.remove()

    def layers_for(self, op_name: str) -> list[str]:
        """Layers whose forward issued ``op_name`` or the forward op of a ``*_backward`` op."""
        base = op_name.split(".")[-2] if op_name.count(".") >= 2 else op_name.split(".")[-1]
        for suffix in _BACKWARD_SUFFIXES:
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        found: set[str] = set()
        if base in ("_to_copy", "view", "t", "detach", "sym_size", "mul", "add", "sub", "sum", "mean"):
            return []  # too generic to pin on one layer
        for recorded, layers in self.ops.items():
            if recorded == base or recorded.startswith(base) or base.startswith(recorded + "_"):
                found |= layers
        return sorted(found)

    def describe(self, op_name: str) -> str:
        layers = self.layers_for(op_name)
        if not layers:
            return "it comes from the loss, the optimizer or the model's own forward code"
        # The root module only "issued" an op if no submodule did (ops in its own forward()).
        specific = [layer for layer in layers if not layer.startswith("<root>")] or layers
        return "from layer " + ", ".join(specific)


def failing_aten_op(error: BaseException) -> str | None:
    """The aten op named in an exporter error chain, e.g. ``aten.convolution_backward.default``."""
    seen = error
    while seen is not None:
        match = re.search(r"OpOverload\(op='([\w.]+)', overload='(\w+)'\)", str(seen))
        if match:
            return f"{match.group(1)}.{match.group(2)}"
        match = re.search(r"target=torch\.ops\.([\w.]+)\]?", str(seen))
        if match:
            return match.group(1)
        seen = seen.__cause__ or seen.__context__
    return None
