"""Differential privacy under secure aggregation, the Python device's part: the clip rule (held
to the shared vector the JavaScript SDK is held to), and Python devices in a real secure cycle
with ``clip_at: device`` whose released checkpoint is start − (their clipped updates' sum ÷
max_diffs), so each device clipped its update before masking it."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest

from fedgrid import Admin, Client
from fedgrid.secagg import flatten
from fedgrid_plans import tensors
from fedgrid_protocol.configs import SecureCycleSettings
from fedgrid_protocol.secagg.clip import clip_to_norm
from fedgrid_protocol.secagg.quantize import step

from .secagg_clip_vector import VECTOR, expected_cases, vector_diff


def test_the_shared_vector_is_what_this_sdk_computes():
    diff = vector_diff()
    assert (VECTOR / "diff.safetensors").read_bytes() == tensors.encode(diff), (
        "run `python -m tests.secagg_clip_vector` only if the rule changed")
    cases, clipped = expected_cases(diff)
    stored = json.loads((VECTOR / "cases.json").read_text())
    assert stored["cases"] == cases
    assert tensors.decode((VECTOR / "clipped.safetensors").read_bytes()).keys() == clipped.keys()
    for key, values in tensors.decode((VECTOR / "clipped.safetensors").read_bytes()).items():
        assert values.dtype == np.float64 and np.array_equal(values, clipped[key])


def test_the_clip_scales_the_whole_update_to_the_clip_norm():
    update = flatten(vector_diff())
    norm = math.sqrt(float(np.sum(update ** 2)))
    for clip_norm in (0.5, norm / 2):
        clipped = clip_to_norm(update, clip_norm)
        assert math.sqrt(float(np.sum(clipped ** 2))) == pytest.approx(clip_norm, rel=1e-12)
        # One factor for every coordinate of every tensor: the direction is kept.
        assert np.allclose(clipped * (norm / clip_norm), update, rtol=1e-12, atol=0)
    assert np.array_equal(clip_to_norm(update, norm * 2), update)  # within the clip: unchanged
    assert np.array_equal(clip_to_norm(update, None), update)  # no differential privacy
    assert not clip_to_norm(np.zeros(4), 1.0).any()
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="not finite"):
            clip_to_norm(np.array([1.0, bad]), 1.0)


def test_the_clip_norm_is_read_from_the_accepted_answer_and_unknown_keys_are_refused():
    settings = SecureCycleSettings(clipping_range=0.5, clip_norm=0.5)
    assert settings.clip_norm == 0.5 and settings.params().clipping_range == 0.5
    assert SecureCycleSettings().clip_norm is None
    with pytest.raises(ValueError):  # a key this SDK does not know: refused, never ignored
        SecureCycleSettings(clip_norm=0.5, clip_everything=True)


DEVICES, GOAL, CLIP = 3, 2, 0.05


def test_python_devices_clip_before_masking_in_a_private_secure_cycle(sdk_node, host, digits):
    z = 1e-5  # the noise (z·C/GOAL) far below the quantisation error: the mean is measured
    name = host(server_config={
        "max_diffs": GOAL, "max_workers": DEVICES, "min_diffs": 2, "cycle_length": 300,
        "num_cycles": 1, "secure_aggregation": {"round_timeout": 5},
        "differential_privacy": {"noise_multiplier": z, "population": 100, "clip": CLIP,
                                 "clip_at": "device"}})
    features, labels = digits
    results: dict[int, object] = {}
    failures: list[BaseException] = []
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        start = admin.retrieve_model(name)
    with Client(sdk_node.url) as client:
        jobs = [client.new_job(name) for _ in range(DEVICES)]

        def device(index: int) -> None:
            shard = (features[index * 60:(index + 1) * 60], labels[index * 60:(index + 1) * 60])
            try:
                jobs[index].participate(
                    shard, cycles=1, on_report=lambda _, result: results.__setitem__(index, result))
            except BaseException as exc:  # re-raised below, in the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=device, args=(i,)) for i in range(DEVICES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures
    with Admin(sdk_node.url, sdk_node.admin_token) as admin:
        cycle = admin.cycles(name)[0]
        new = admin.retrieve_model(name)
    assert (cycle["status"], cycle["reported"]) == ("completed", DEVICES)
    updates = [flatten(results[i].diff) for i in range(DEVICES)]
    assert all(math.sqrt(float(np.dot(u, u))) > 2 * CLIP for u in updates)  # all were clipped
    clipped_sum = np.sum([clip_to_norm(u, CLIP) for u in updates], axis=0)
    applied = flatten({key: start[key].astype(np.float64) - new[key] for key in start})
    params = SecureCycleSettings(clipping_range=CLIP).params()
    tolerance = DEVICES / GOAL * step(params) + 6 * z * CLIP / GOAL + 1e-7
    assert np.abs(applied - clipped_sum / GOAL).max() <= tolerance
    unclipped = np.sum(updates, axis=0) / GOAL
    assert np.abs(applied - unclipped).max() > 100 * tolerance
