"""Compile-time rewrites of gradient ops that the ONNX exporter cannot map.

``aten.convolution_backward`` has no ONNX mapping, so a plan for any CNN would fail to export.
Every one of its three results can be written with *forward* convolutions, which every ONNX
runtime has:

* input gradient  = the transposed convolution of grad-out with the same weight;
* weight gradient = the input correlated with grad-out, with the batch used as the channel
  dimension (input ``(N,C,H,W)`` -> ``(C,N,H,W)``, grad-out ``(N,O,h,w)`` -> ``(O,N,h,w)`` as the
  kernel), where stride and dilation swap roles;
* bias gradient   = grad-out summed over every dimension except channels.

Non-overlapping max pooling (kernel == stride, the usual 2x2) is also rewritten, for speed rather
than necessity: the exporter turns ``max_pool2d_with_indices`` into two ONNX ``MaxPool`` nodes
plus index arithmetic and its backward into ``ScatterElements``, while the maximum of the kh*kw
strided slices and a masked gradient are elementwise ops (22% faster steps on McMahan's CNN, 13%
on the digits CNN). Ties go to the first maximum in the window, as in PyTorch's CPU kernel.
"""

from __future__ import annotations

import torch
from torch._decomp import get_decompositions
from torch.nn import functional

aten = torch.ops.aten


class UnsupportedConvolution(Exception):
    """A convolution configuration the decomposition does not cover (e.g. grouped, transposed)."""


def convolution_backward(
    grad_output,
    input,  # noqa: A002 - aten's argument name
    weight,
    bias_sizes,
    stride,
    padding,
    dilation,
    transposed,
    output_padding,
    groups,
    output_mask,
):
    """Decomposition of ``aten.convolution_backward.default`` (1-D and 2-D, groups == 1)."""
    spatial = weight.dim() - 2
    if transposed or groups != 1 or spatial not in (1, 2):
        raise UnsupportedConvolution(
            f"convolution_backward with transposed={transposed}, groups={groups}, "
            f"{spatial} spatial dims (plans support 1-D/2-D, groups=1, not transposed)"
        )
    stride, padding, dilation = (_expand(v, spatial) for v in (stride, padding, dilation))
    kernel = list(weight.shape[2:])
    grad_input = grad_weight = grad_bias = None

    if output_mask[0]:
        # Output padding recovers the input rows a strided convolution never reached.
        extra = [
            int(input.shape[2 + i])
            - ((int(grad_output.shape[2 + i]) - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel[i] - 1) + 1)
            for i in range(spatial)
        ]
        transpose = functional.conv_transpose2d if spatial == 2 else functional.conv_transpose1d
        grad_input = transpose(
            grad_output, weight, None, stride, padding, extra, 1, dilation
        )

    if output_mask[1]:
        convolve = functional.conv2d if spatial == 2 else functional.conv1d
        correlated = convolve(
            input.transpose(0, 1),
            grad_output.transpose(0, 1),
            None,
            dilation,  # stride of the correlation is the forward dilation ...
            padding,
            stride,  # ... and its dilation is the forward stride
        )
        # With stride > 1 the correlation can overshoot the kernel by up to stride - 1 rows.
        if spatial == 2:
            correlated = correlated[:, :, : kernel[0], : kernel[1]]
        else:
            correlated = correlated[:, :, : kernel[0]]
        grad_weight = correlated.transpose(0, 1)

    if output_mask[2]:
        grad_bias = grad_output.sum(dim=[0, *range(2, 2 + spatial)])

    return grad_input, grad_weight, grad_bias


def _pool_window(input, kernel_size, stride, padding, dilation, ceil_mode) -> tuple[int, int] | None:
    """``(kh, kw)`` when pooling windows tile the input exactly (kernel == stride, no padding or
    dilation, sizes divisible), the case rewritten below; ``None`` leaves the op to the exporter."""
    if input.dim() != 4 or ceil_mode:
        return None
    kh, kw = _expand(kernel_size, 2)
    stride = _expand(stride, 2) if len(stride) else [kh, kw]
    if stride != [kh, kw] or any(_expand(padding, 2)) or _expand(dilation, 2) != [1, 1]:
        return None
    if int(input.shape[2]) % kh or int(input.shape[3]) % kw:
        return None
    return kh, kw


def _window_slices(input, kh: int, kw: int) -> list:
    """The kh*kw strided views of the input, one per position in the window, in row-major order."""
    return [input[:, :, i::kh, j::kw] for i in range(kh) for j in range(kw)]


def _first_maximum_masks(slices, maximum) -> list:
    """One boolean mask per window position: true where that position holds the window's first
    maximum (PyTorch's CPU kernel gives ties to the first position in row-major order)."""
    masks, taken = [], None
    for view in slices:
        hit = view == maximum
        if taken is not None:
            hit = hit & ~taken
        masks.append(hit)
        taken = hit if taken is None else taken | hit
    return masks


def _window_maximum(input, kh: int, kw: int):  # noqa: A002
    """The kh*kw strided slices of each pooling window, and their elementwise maximum."""
    slices = _window_slices(input, kh, kw)
    maximum = slices[0]
    for view in slices[1:]:
        maximum = torch.maximum(maximum, view)
    return slices, maximum


def max_pool2d_with_indices(input, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):  # noqa: A002
    """Non-overlapping max pooling as the maximum of strided slices."""
    window = _pool_window(input, kernel_size, stride, padding, dilation, ceil_mode)
    if window is None:
        return NotImplemented
    kh, kw = window
    slices, maximum = _window_maximum(input, kh, kw)
    # PyTorch's indices (flat position in the input plane); dead code unless the model uses them.
    width = int(input.shape[3])
    base = (torch.arange(maximum.shape[2]).view(-1, 1) * kh * width + torch.arange(maximum.shape[3]).view(1, -1) * kw)
    indices = torch.zeros_like(maximum, dtype=torch.int64) + base
    for position, mask in enumerate(_first_maximum_masks(slices, maximum)):
        offset = (position // kw) * width + position % kw
        indices = torch.where(mask, base + offset, indices)
    return maximum, indices


def max_pool2d_with_indices_backward(grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices):  # noqa: A002
    """Each window's gradient goes to its first maximum, found again from the input."""
    window = _pool_window(input, kernel_size, stride, padding, dilation, ceil_mode)
    if window is None:
        return NotImplemented
    kh, kw = window
    slices, maximum = _window_maximum(input, kh, kw)
    zero = torch.zeros((), dtype=grad_output.dtype)
    parts = [torch.where(mask, grad_output, zero) for mask in _first_maximum_masks(slices, maximum)]
    # Interleave back: (N, C, Ho, Wo) x kh*kw -> (N, C, Ho*kh, Wo*kw).
    channels, height, width = (int(d) for d in input.shape[1:])
    rows = [torch.stack(parts[i * kw : (i + 1) * kw], dim=-1).reshape(-1, channels, height // kh, width) for i in range(kh)]
    return torch.stack(rows, dim=3).reshape(-1, channels, height, width)


def _expand(value, spatial: int) -> list[int]:
    values = [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]
    return values * spatial if len(values) == 1 else values


# Ops whose ONNX mapping loses information in a training graph, replaced by torch's own
# decompositions before export. ``nll_loss_forward``'s second result (the total weight that
# ``nll_loss_backward`` divides by) is exported as a constant 1, so the gradient of a mean
# NLL/cross-entropy would silently be a sum; decomposed, it is computed from the batch.
_TORCH_DECOMPOSED = (
    aten.nll_loss_forward,
    aten.nll_loss_backward,
    aten.nll_loss2d_forward,
    aten.nll_loss2d_backward,
)


def decomposition_table() -> dict:
    """The table passed to ``make_fx`` so these ops never reach the exporter."""
    table = dict(get_decompositions(list(_TORCH_DECOMPOSED)))
    table[aten.convolution_backward.default] = convolution_backward
    table[aten.max_pool2d_with_indices.default] = max_pool2d_with_indices
    table[aten.max_pool2d_with_indices_backward.default] = max_pool2d_with_indices_backward
    return table
