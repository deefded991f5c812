"""Local data for devices and simulations: inputs to ``train``, datasets and their files, and
splits of one dataset over devices (IID, label shards, Dirichlet label skew).

Everything here is offline: scikit-learn's bundled 8x8 digits (no download), ``.npz`` files, and a
reader for MNIST's IDX files for users who already have them on disk.
"""

from __future__ import annotations

import gzip
import struct
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FedgridError

SPLITS = ("iid", "shards", "dirichlet")
SPLIT_ALIASES = {"noniid": "shards"}
# The array names an .npz may use, in the order they are looked for.
NPZ_KEYS = (("features", "labels"), ("x", "y"), ("X", "y"))


class DataError(FedgridError, ValueError):
    """The data cannot be used as asked: a file that does not hold ``features`` and ``labels``,
    lengths that differ, a shape or labels the model cannot take, a split that leaves a device
    with nothing. ``code`` says which; the message says what to change. Raised before anything is
    hosted."""


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
        for x_key, y_key in NPZ_KEYS:
            if {x_key, y_key} <= keys:
                return np.asarray(data[x_key]), np.asarray(data[y_key])
        raise DataError(f"data needs arrays 'features' and 'labels' (or 'x' and 'y'), got "
                        f"{sorted(keys)}", code="data_unreadable")
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


def load_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)`` from an ``.npz`` file (``numpy.savez``) holding the arrays
    ``features`` and ``labels`` (or ``x`` and ``y``); other arrays in it are left unread."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file", code="data_unreadable")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})", code="data_unreadable") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single array, not an .npz with 'features' and 'labels'; save "
                        "both with numpy.savez(path, features=x, labels=y)", code="data_unreadable")
    with loaded as archive:
        try:
            return as_arrays(archive)
        except DataError as exc:
            raise DataError(f"{path}: {exc.message}", code=exc.code) from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # a damaged member
            raise DataError(f"{path}: not a readable .npz file ({exc})",
                            code="data_unreadable") from None


def device_files(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The ``.npz`` files of per-device data, one per device: the files given, or every ``.npz``
    in a directory given (sorted by name, so device ``i`` is the ``i``-th file)."""
    given = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    files: list[Path] = []
    for path in given:
        if path.is_dir():
            found = sorted(path.glob("*.npz"))
            if not found:
                raise DataError(f"{path}: no .npz files (one per device) in this directory",
                                code="data_unreadable")
            files.extend(found)
        else:
            files.append(path)
    if not files:
        raise DataError("no per-device data files given", code="data_unreadable")
    return files


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
    if not 0 < test_fraction < 1:
        raise DataError(f"the test fraction must be between 0 and 1, not {test_fraction}",
                        code="split_invalid")
    order = np.random.default_rng(seed).permutation(len(features))
    cut = len(features) - int(round(len(features) * test_fraction))
    if cut == len(features) or cut == 0:
        raise DataError(f"holding out {test_fraction:.0%} of {len(features)} example(s) leaves "
                        f"{'no test' if cut == len(features) else 'no training'} example; give a "
                        "test set explicitly or more data", code="split_invalid")
    train, test = order[:cut], order[cut:]
    return (features[train], labels[train]), (features[test], labels[test])


def split(features: np.ndarray, labels: np.ndarray, devices: int, how: str = "iid", *,
          alpha: float = 0.5, shards_per_device: int = 2,
          seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deal one dataset to ``devices`` devices, every example to exactly one of them.

    ``how``: ``"iid"`` (:func:`split_iid`), ``"shards"`` (:func:`split_shards`; ``"noniid"`` is the
    same) or ``"dirichlet"`` (:func:`split_dirichlet`).
    """
    how = SPLIT_ALIASES.get(how, how)
    if how == "iid":
        return split_iid(features, labels, devices, seed=seed)
    if how == "shards":
        return split_shards(features, labels, devices, shards_per_device=shards_per_device,
                            seed=seed)
    if how == "dirichlet":
        return split_dirichlet(features, labels, devices, alpha=alpha, seed=seed)
    raise DataError(f"unknown split {how!r}; use one of {', '.join(SPLITS)}", code="split_invalid")


def split_iid(features: np.ndarray, labels: np.ndarray, devices: int, *,
              seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffle and deal the examples into ``devices`` shards of (nearly) equal size."""
    _check_devices(devices, len(features))
    order = np.random.default_rng(seed).permutation(len(features))
    return [(features[part], labels[part]) for part in np.array_split(order, devices)]


def split_shards(features: np.ndarray, labels: np.ndarray, devices: int, *,
                 shards_per_device: int = 2, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """McMahan et al. (2017)'s pathological non-IID split: sort by label, cut
    ``devices * shards_per_device`` shards, give each device ``shards_per_device`` random shards.

    Each label is cut into its own shards (as many as its share of the examples; at least one), so
    a shard never straddles two labels and a device holds at most ``shards_per_device`` labels.
    That needs at least as many shards as labels; with fewer, the shards are equal runs of the
    label-sorted examples, as in the paper, and a run may span several labels.
    """
    if shards_per_device < 1:
        raise DataError(f"shards per device must be at least 1, not {shards_per_device}",
                        code="split_invalid")
    _check_devices(devices, len(features), shards_per_device)
    rng = np.random.default_rng(seed)
    count = devices * shards_per_device
    # Shuffled within each label (a stable sort after a permutation), so shards are random draws.
    mixed = rng.permutation(len(features))
    by_label = mixed[np.argsort(labels[mixed], kind="stable")]
    classes, sizes = np.unique(labels[by_label], return_counts=True)
    if count >= len(classes):
        per_label = _shares(sizes, count)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        shards = [part for start, size, pieces in zip(starts, sizes, per_label, strict=True)
                  for part in np.array_split(by_label[start : start + size], pieces)]
    else:
        shards = np.array_split(by_label, count)
    picks = rng.permutation(count).reshape(devices, shards_per_device)
    return [(features[rows], labels[rows])
            for rows in (np.concatenate([shards[i] for i in row]) for row in picks)]


# McMahan et al. call it the pathological non-IID split; "noniid" was this module's first name.
split_noniid = split_shards


def split_dirichlet(features: np.ndarray, labels: np.ndarray, devices: int, *, alpha: float = 0.5,
                    seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Label skew after Hsu et al. (2019): device ``i`` draws its label mix
    ``q_i ~ Dirichlet(alpha * p)`` (``p``: the labels' overall frequencies) and gets an equal share
    of the examples, drawn with its mix from what the devices before it left.

    Small ``alpha`` (0.1) gives devices dominated by one or two labels, large ``alpha`` (100)
    nearly the overall mix. Every example goes to exactly one device; once a device's preferred
    labels are used up, it takes the remaining labels in proportion to its mix, then evenly.
    """
    if not alpha > 0:  # also refuses NaN
        raise DataError(f"the Dirichlet concentration alpha must be > 0, not {alpha}",
                        code="split_invalid")
    _check_devices(devices, len(features))
    rng = np.random.default_rng(seed)
    classes, label_index = np.unique(labels, return_inverse=True)
    pools = [rng.permutation(np.flatnonzero(label_index == k)) for k in range(len(classes))]
    left = np.array([len(pool) for pool in pools])
    prior = left / left.sum()
    mixes = _dirichlet_rows(rng, alpha * prior, devices)
    sizes = [len(part) for part in np.array_split(np.arange(len(features)), devices)]
    taken = np.zeros(len(classes), dtype=np.int64)
    shards: list[np.ndarray] = []
    for mix, size in zip(mixes, sizes, strict=True):
        counts = np.zeros(len(classes), dtype=np.int64)
        while (missing := size - counts.sum()) > 0:
            available = left - counts
            weights = np.where(available > 0, mix, 0.0)
            if weights.sum() <= 0:  # this device's labels are used up: take what is left, evenly
                weights = (available > 0).astype(np.float64)
            counts += np.minimum(rng.multinomial(missing, weights / weights.sum()), available)
        rows = np.concatenate([pools[k][taken[k] : taken[k] + counts[k]]
                               for k in range(len(classes))])
        taken += counts
        left -= counts
        shards.append(rng.permutation(rows))
    return [(features[rows], labels[rows]) for rows in shards]


def _dirichlet_rows(rng: np.random.Generator, concentration: np.ndarray, rows: int) -> np.ndarray:
    """``rows`` draws from Dirichlet(``concentration``), via Gamma draws: numpy's own sampler can
    return NaN rows when every concentration is tiny; here such a row puts all its mass on the
    label with the largest draw (the limit as alpha goes to 0)."""
    gammas = rng.gamma(concentration, size=(rows, len(concentration)))
    totals = gammas.sum(axis=1, keepdims=True)
    degenerate = totals[:, 0] <= 0
    if degenerate.any():
        gammas[degenerate] = np.eye(len(concentration))[rng.choice(len(concentration),
                                                                     size=degenerate.sum(),
                                                                     p=concentration / concentration.sum())]
        totals = gammas.sum(axis=1, keepdims=True)
    return gammas / totals


def _shares(sizes: np.ndarray, total: int) -> np.ndarray:
    """``total`` pieces shared over groups in proportion to ``sizes`` (largest remainders), each
    group at least one piece and at most its size."""
    quota = sizes * total / sizes.sum()
    pieces = np.clip(np.floor(quota).astype(np.int64), 1, sizes)
    while pieces.sum() < total:
        room = np.where(pieces < sizes, quota - pieces, -np.inf)
        pieces[np.argmax(room)] += 1
    while pieces.sum() > total:
        spare = np.where(pieces > 1, pieces - quota, -np.inf)
        pieces[np.argmax(spare)] -= 1
    return pieces


def _check_devices(devices: int, examples: int, shards_per_device: int = 1) -> None:
    if devices < 1:
        raise DataError(f"the number of devices must be at least 1, not {devices}",
                        code="split_invalid")
    if devices * shards_per_device > examples:
        needed = f"{devices} devices" if shards_per_device == 1 else \
            f"{devices} devices x {shards_per_device} shards"
        raise DataError(f"cannot split {examples} training example(s) over {needed}: every "
                        "device needs at least one example; use fewer devices or more data",
                        code="too_many_devices")


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
