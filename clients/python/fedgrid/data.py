"""Local data for devices and simulations: inputs to ``train``, datasets, IID and non-IID splits.

Everything here is offline: scikit-learn's bundled 8x8 digits (no download), and a reader for
MNIST's IDX files for users who already have them on disk.
"""

from __future__ import annotations

import gzip
import struct
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

# IDX type codes (LeCun's MNIST format) -> numpy dtypes, big-endian as stored.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def as_arrays(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)`` from what a device has at hand:

    - a ``(features, labels)`` pair of arrays (or anything ``numpy.asarray`` takes);
    - a mapping with ``features`` and ``labels`` (or ``x`` and ``y``), e.g. a loaded ``.npz``;
    - an iterable of ``(features, labels)`` batches (concatenated: the plan's own batch size
      decides the updates, so a device's batching does not change what it learns);
    - a ``torch.utils.data.Dataset`` of ``(features, labels)`` items (when torch is installed).
    """
    if hasattr(data, "keys") and hasattr(data, "__getitem__"):
        keys = set(data.keys())
        for x_key, y_key in (("features", "labels"), ("x", "y"), ("X", "y")):
            if {x_key, y_key} <= keys:
                return np.asarray(data[x_key]), np.asarray(data[y_key])
        raise ValueError(f"a mapping of data needs 'features' and 'labels' keys, got {sorted(keys)}")
    if isinstance(data, tuple | list) and len(data) == 2 and _is_array_like(data[0]):
        return np.asarray(data[0]), np.asarray(data[1])
    if _is_torch_dataset(data):
        items = [data[i] for i in range(len(data))]
        return _stack([_to_numpy(x) for x, _ in items]), _stack([_to_numpy(y) for _, y in items])
    if isinstance(data, Iterable):
        features, labels = [], []
        for batch in data:
            x, y = batch
            features.append(np.asarray(_to_numpy(x)))
            labels.append(np.asarray(_to_numpy(y)))
        if not features:
            raise ValueError("the data iterable yielded no batches")
        return np.concatenate(features), np.concatenate(labels)
    raise TypeError(
        "train() takes (features, labels) arrays, a mapping with 'features' and 'labels', an "
        f"iterable of (features, labels) batches or a torch Dataset, not {type(data).__name__}"
    )


def load_digits(input_shape: tuple[int, ...] = (64,)) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images), no download needed.

    Features are float32 in [0, 1] shaped ``(n, *input_shape)``; labels int64. ``input_shape``
    may be ``(64,)``, ``(1, 8, 8)``, or an MNIST layout (``(784,)``, ``(1, 28, 28)``: the digits
    scaled up and padded). Needs scikit-learn (``pip install fedgrid[data]``).
    """
    from fedgrid_plans.digits import load_digits_arrays

    return load_digits_arrays(tuple(input_shape))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST's format, optionally gzipped) into an array of its stored shape."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    dims = raw[3]
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    body = raw[4 + 4 * dims :]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(body) != expected:
        raise ValueError(f"{path}: {len(body)} data bytes, the header announces {expected}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist(images_path: str | Path, labels_path: str | Path,
               input_shape: tuple[int, ...] = (784,)) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from its IDX files (e.g. ``train-images-idx3-ubyte.gz``): float32 in [0, 1], int64."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    features = (images.astype(np.float32) / 255.0).reshape(len(images), *input_shape)
    return features, labels.astype(np.int64)


def train_test_split(features: np.ndarray, labels: np.ndarray, *, test_fraction: float = 0.2,
                     seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Shuffle once with ``seed`` and hold out ``test_fraction`` for evaluation."""
    order = np.random.default_rng(seed).permutation(len(features))
    cut = len(features) - int(round(len(features) * test_fraction))
    train, test = order[:cut], order[cut:]
    return (features[train], labels[train]), (features[test], labels[test])


def split_iid(features: np.ndarray, labels: np.ndarray, devices: int, *,
              seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffle and deal the examples into ``devices`` shards of (nearly) equal size."""
    _check_devices(devices, len(features), 1)
    order = np.random.default_rng(seed).permutation(len(features))
    return [(features[part], labels[part]) for part in np.array_split(order, devices)]


def split_noniid(features: np.ndarray, labels: np.ndarray, devices: int, *,
                 shards_per_device: int = 2, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """McMahan et al.'s pathological non-IID split: sort by label, cut into
    ``devices * shards_per_device`` shards, give each device ``shards_per_device`` random shards
    (so most devices see only two digits)."""
    _check_devices(devices, len(features), shards_per_device)
    rng = np.random.default_rng(seed)
    # A stable sort keeps the split reproducible; the shuffle first mixes examples within a label.
    mixed = rng.permutation(len(features))
    by_label = mixed[np.argsort(labels[mixed], kind="stable")]
    shards = np.array_split(by_label, devices * shards_per_device)
    picks = rng.permutation(len(shards)).reshape(devices, shards_per_device)
    return [
        (features[np.concatenate([shards[i] for i in row])],
         labels[np.concatenate([shards[i] for i in row])])
        for row in picks
    ]


def _check_devices(devices: int, examples: int, shards_per_device: int) -> None:
    if devices < 1 or devices * shards_per_device > examples:
        raise ValueError(f"cannot split {examples} examples over {devices} devices")


def _is_array_like(value: Any) -> bool:
    return hasattr(value, "__array__") or hasattr(value, "shape") or isinstance(value, list)


def _is_torch_dataset(data: Any) -> bool:
    # A torch Dataset can only exist if torch was imported already; never import it just to check.
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    return isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__")


def _to_numpy(value: Any) -> Any:
    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().numpy()
    return value


def _stack(values: list[Any]) -> np.ndarray:
    return np.stack([np.asarray(v) for v in values])
