"""scikit-learn's bundled 8x8 digits, shaped for each zoo model (tests, conformance, demos).

The MNIST-sized models get the digits scaled 3x (24x24) and zero-padded to 28x28, so every
model trains on real handwriting without downloading anything. Needs scikit-learn.
"""

from __future__ import annotations

import numpy as np


def load_digits_arrays(input_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(features float32 in [0, 1], labels int64)`` with features shaped ``(n, *input_shape)``.

    Supported shapes: ``(64,)``, ``(1, 8, 8)``, ``(784,)``, ``(1, 28, 28)``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)  # (n, 8, 8)
    labels = digits.target.astype(np.int64)
    if tuple(input_shape) in ((64,), (1, 8, 8)):
        return images.reshape(len(images), *input_shape), labels
    if tuple(input_shape) in ((784,), (1, 28, 28)):
        upscaled = images.repeat(3, axis=1).repeat(3, axis=2)  # (n, 24, 24)
        padded = np.pad(upscaled, ((0, 0), (2, 2), (2, 2)))
        return np.ascontiguousarray(padded.reshape(len(images), *input_shape)), labels
    raise ValueError(f"no digits layout for input shape {input_shape}")
