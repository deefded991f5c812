"""Data helpers: splits, the IDX reader, and a device install that never imports torch."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys

import numpy as np
import pytest

from fedgrid.data import (
    DataError,
    as_arrays,
    device_files,
    load_mnist,
    load_npz,
    read_idx,
    split,
    split_dirichlet,
    split_iid,
    split_noniid,
    split_shards,
    train_test_split,
)


def labelled(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Features that are each example's own number (to track it through a split), and labels
    ``0`` x counts[0], ``1`` x counts[1], ..."""
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.arange(len(labels)).reshape(-1, 1), labels


def dealt_once(shards, features) -> bool:
    ids = np.concatenate([x[:, 0] for x, _ in shards])
    return sorted(ids.tolist()) == features[:, 0].tolist()


def label_share(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.bincount(labels, minlength=classes) / len(labels)


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


@pytest.mark.parametrize("how", ["iid", "shards", "dirichlet"])
def test_every_split_deals_every_example_exactly_once(how):
    features, labels = labelled([50, 30, 70, 20, 30])
    shards = split(features, labels, 7, how, alpha=0.3, seed=4)
    assert len(shards) == 7 and all(len(y) > 0 for _, y in shards)
    assert dealt_once(shards, features)
    for x, y in shards:  # each example keeps its own label
        np.testing.assert_array_equal(labels[x[:, 0]], y)


def test_iid_split_sizes_differ_by_at_most_one():
    features, labels = labelled([50, 30, 70, 20, 30])
    sizes = [len(y) for _, y in split_iid(features, labels, 7, seed=0)]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("per_device", [1, 2, 3])
def test_label_shards_give_each_device_at_most_k_labels(per_device):
    # Uneven labels: shards are cut within a label, so none straddles two.
    features, labels = labelled([140, 90, 200, 60, 110, 75, 130, 95, 180, 120])
    shards = split_shards(features, labels, 12, shards_per_device=per_device, seed=2)
    assert dealt_once(shards, features)
    assert max(len(set(y.tolist())) for _, y in shards) <= per_device
    assert split_noniid is split_shards and split(features, labels, 12, "noniid", seed=2)


def test_label_shards_with_fewer_shards_than_labels_still_deal_everything():
    features, labels = labelled([30] * 10)
    shards = split_shards(features, labels, 3, shards_per_device=2, seed=0)  # 6 shards, 10 labels
    assert dealt_once(shards, features)
    assert sum(len(set(y.tolist())) for _, y in shards) >= 10


def test_dirichlet_small_alpha_is_skewed_and_large_alpha_near_uniform():
    features, labels = labelled([200] * 10)
    overall = label_share(labels, 10)

    def distance_from_overall(alpha):  # median total-variation distance of a device's label mix
        shards = split_dirichlet(features, labels, 20, alpha=alpha, seed=0)
        assert dealt_once(shards, features)
        return np.median([0.5 * np.abs(label_share(y, 10) - overall).sum() for _, y in shards])

    skewed, uniform = distance_from_overall(0.05), distance_from_overall(1000.0)
    assert skewed > 0.7, skewed  # most devices hold essentially one or two labels
    assert uniform < 0.15, uniform
    dominant = [label_share(y, 10).max() for _, y in split_dirichlet(features, labels, 20,
                                                                     alpha=0.05, seed=0)]
    assert np.median(dominant) > 0.8


@pytest.mark.parametrize("how", ["iid", "shards", "dirichlet"])
def test_splits_are_reproducible_with_a_seed(how):
    features, labels = labelled([40, 60, 50, 30])
    first, again = (split(features, labels, 5, how, seed=11) for _ in range(2))
    other = split(features, labels, 5, how, seed=12)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(("call", "code"), [
    (lambda x, y: split(x, y, 3, "dirichlet", alpha=0.0), "split_invalid"),
    (lambda x, y: split(x, y, 3, "dirichlet", alpha=-1.0), "split_invalid"),
    (lambda x, y: split(x, y, 3, "dirichlet", alpha=float("nan")), "split_invalid"),
    (lambda x, y: split(x, y, 3, "shards", shards_per_device=0), "split_invalid"),
    (lambda x, y: split(x, y, 3, "by-country"), "split_invalid"),
    (lambda x, y: split(x, y, 0, "iid"), "split_invalid"),
    (lambda x, y: split(x, y, 11, "iid"), "too_many_devices"),
    (lambda x, y: split(x, y, 6, "shards", shards_per_device=2), "too_many_devices"),
    (lambda x, y: train_test_split(x, y, test_fraction=1.0), "split_invalid"),
    (lambda x, y: train_test_split(x[:2], y[:2], test_fraction=0.1), "split_invalid"),
])
def test_impossible_splits_say_why(call, code):
    features, labels = labelled([5, 5])
    with pytest.raises(DataError) as raised:
        call(features, labels)
    assert raised.value.code == code and "\n" not in str(raised.value)


def test_npz_files_hold_features_and_labels_or_x_and_y(tmp_path):
    np.savez(tmp_path / "a.npz", features=np.ones((3, 2)), labels=[0, 1, 2], extra=[9])
    np.savez(tmp_path / "b.npz", x=np.zeros((1, 2)), y=[1])
    features, labels = load_npz(tmp_path / "a.npz")
    assert features.shape == (3, 2) and labels.tolist() == [0, 1, 2]
    assert load_npz(tmp_path / "b.npz")[1].tolist() == [1]
    assert device_files(tmp_path) == [tmp_path / "a.npz", tmp_path / "b.npz"]
    assert device_files([tmp_path / "b.npz"]) == [tmp_path / "b.npz"]


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    (b"not a zip", "not a readable .npz"),
    ("pixels", "'features' and 'labels'"),
    ("array", "a single array"),
])
def test_unreadable_data_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "data.npz"
    if content == "pixels":
        np.savez(path, pixels=np.ones(3))
    elif content == "array":
        path = tmp_path / "data.npy"
        np.save(path, np.ones(3))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message) as raised:
        load_npz(path)
    assert raised.value.code == "data_unreadable" and str(path) in str(raised.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no .npz files"):
        device_files(empty)


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
        "fedgrid.simulation_data, fedgrid.simulation_console, fedgrid.cli; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
