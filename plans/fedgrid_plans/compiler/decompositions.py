"""Compile-time rewrites of gradient ops that the ONNX exporter cannot map.

``aten.convolution_backward`` has no ONNX mapping, so a plan for any CNN would fail to export.
Every one of its three results can be written with *forward* convolutions, which every ONNX
runtime has:

* input gradient  = the transposed convolution of grad-out with the same weight;
* weight gradient = the input correlated with grad-out, with the batch used as the channel
  dimension (input ``(N,C,H,W)`` -> ``(C,N,H,W)``, grad-out ``(N,O,h,w)`` -> ``(O,N,h,w)`` as the
  kernel), where stride and dilation swap roles;
* bias gradient   = grad-out summed over every dimension except channels.
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


def _expand(value, spatial: int) -> list[int]:
    values = [int(v) for v in value]
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
    return table
