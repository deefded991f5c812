"""Data helpers: splits, the IDX reader, and a device install that never imports torch."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys

import numpy as np
import pytest

from fedgrid.data import as_arrays, load_mnist, read_idx, split_iid, split_noniid, train_test_split


def test_iid_split_deals_every_example_once(digits):
    features, labels = digits
    shards = split_iid(features, labels, 20, seed=1)
    assert len(shards) == 20
    assert sum(len(x) for x, _ in shards) == len(features)
    assert max(len(x) for x, _ in shards) - min(len(x) for x, _ in shards) <= 1
    # IID: every device sees most digits.
    assert min(len(set(y.tolist())) for _, y in shards) >= 7


def test_noniid_split_gives_each_device_about_two_digits(digits):
    features, labels = digits
    shards = split_noniid(features, labels, 20, seed=1)
    assert sum(len(x) for x, _ in shards) == len(features)
    # Two label-sorted shards per device: at most 4 labels (a shard may straddle a boundary).
    assert all(len(set(y.tolist())) <= 4 for _, y in shards)
    assert np.mean([len(set(y.tolist())) for _, y in shards]) <= 3


def test_train_test_split_is_disjoint_and_reproducible(digits):
    features, labels = digits
    (a, _), (b, _) = train_test_split(features, labels, test_fraction=0.2, seed=3)
    (c, _), _ = train_test_split(features, labels, test_fraction=0.2, seed=3)
    assert len(a) + len(b) == len(features) and len(b) == round(0.2 * len(features))
    np.testing.assert_array_equal(a, c)


def _write_idx(path, array: np.ndarray, code: int, compress: bool) -> None:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_reader(tmp_path, compress):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    labels = np.array([7, 2, 1], dtype=np.uint8)
    _write_idx(tmp_path / "images", images, 0x08, compress)
    _write_idx(tmp_path / "labels", labels, 0x08, compress)
    np.testing.assert_array_equal(read_idx(tmp_path / "images"), images)
    features, targets = load_mnist(tmp_path / "images", tmp_path / "labels")
    assert features.shape == (3, 784) and features.dtype == np.float32 and features.max() <= 1
    assert targets.tolist() == [7, 2, 1]
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "bad")


def test_as_arrays_refuses_what_it_cannot_read():
    with pytest.raises(TypeError, match="features, labels"):
        as_arrays(42)
    with pytest.raises(ValueError, match="features"):
        as_arrays({"pixels": [1]})


def test_the_device_side_never_imports_torch():
    code = (
        "import sys, fedgrid, fedgrid.jobs, fedgrid.transport, fedgrid.data, fedgrid.simulate, "
        "fedgrid.cli; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
