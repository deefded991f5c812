"""DP-FedAvg under secure aggregation (``clip_at: device``) on a real Node (SQLite and PostgreSQL).

Devices run the SecAgg+ rounds over HTTP with updates far above the clip; each clips its own
update before masking it (as both SDKs do, fedgrid_protocol.secagg.clip). The Node unmasks the
survivors' sum and releases start − (sum of the clipped updates ÷ max_diffs) + N(0, (z·C ÷
max_diffs)²): with almost no noise the checkpoint is that fixed-denominator mean within the
quantisation error, and on a model of 102,500 parameters with z = 1 the residual's standard
deviation is z·C ÷ max_diffs within 2 %. ε is dp-accounting's for the cohort's sampling rate,
and the budget finishes the process as with clip_at node.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from fedgrid_plans import tensors
from fedgrid_protocol.secagg.quantize import step
from tests.support.api_client import HttpApi
from tests.support.models import logistic_regression, unique_name

from .test_cycle_engine import cycles_of, wait_for
from .test_dp_fedavg import independent_epsilon, privacy_of
from .test_secagg_cycle import Device, flat

GOAL = 3  # max_diffs: the fixed denominator
COHORT = 4  # max_workers: every survivor of the cohort is in the sum
POPULATION = 300
DELTA = 1e-4
CLIP = 0.5


@cache
def wide_linear() -> tuple[bytes, bytes]:
    """(plan, checkpoint) of a 1024 -> 100 linear model: 102,500 parameters, enough coordinates
    to measure the noise's standard deviation to a fraction of a percent."""
    import torch

    from fedgrid_plans.compiler import compile_plan

    torch.manual_seed(0)
    compiled = compile_plan(torch.nn.Linear(1024, 100), loss="cross_entropy",
                            example_batch=(np.zeros((4, 1024), np.float32),
                                           np.zeros(4, np.int64)))
    return compiled.to_bytes(), tensors.encode(compiled.checkpoint())


@pytest.fixture
def api(shared_node):
    client = HttpApi(shared_node.url, shared_node.admin_token)
    yield client
    client.close()


def host_private(api, name, model, *, noise_multiplier, **dp):
    plan, checkpoint = model
    answer = api.call("host-training", {
        "name": name, "version": "1", "client_config": {"batch_size": 8},
        "server_config": {
            "max_diffs": GOAL, "max_workers": COHORT, "min_diffs": 2, "cycle_length": 300,
            "secure_aggregation": {"round_timeout": 5},
            "differential_privacy": {"noise_multiplier": noise_multiplier,
                                     "population": POPULATION, "clip": CLIP, "delta": DELTA,
                                     "clip_at": "device", **dp}},
    }, blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)
    assert answer.status == 200, answer.body


def run_secure_cycle(devices: list[Device]) -> None:
    """Every device through the four rounds (none drops)."""
    for device in devices:
        device.round()
        device.advertise()
    for device in devices:
        device.share(device.round())
    for device in devices:
        device.masked_input(device.round())
    for device in devices:
        device.unmask(device.round())


def completed_cycle(api, name, number):
    return wait_for(lambda: (lambda c: c if len(c) >= number and c[number - 1]["status"]
                             == "completed" else None)(cycles_of(api, name)),
                    f"cycle {number} to complete")[number - 1]


def norm(vector: np.ndarray) -> float:
    return math.sqrt(float(np.dot(vector, vector)))


def clipped(device: Device) -> np.ndarray:
    update = flat(device.diff).astype(np.float64)
    return update * min(1.0, CLIP / norm(update))


def applied_step(api, name, start: dict[str, np.ndarray]) -> np.ndarray:
    after = tensors.decode(api.call("retrieve-model", {"name": name, "checkpoint": 2},
                                    admin=True).content)
    return flat({n: start[n].astype(np.float64) - after[n] for n in start})


def test_devices_clip_and_the_node_releases_the_fixed_denominator_mean(api):
    name = unique_name("dpsec")
    z = 1e-5  # noise far below the quantisation step's scale: the mean itself is measured
    budget = (independent_epsilon([(z, COHORT / POPULATION)], DELTA)
              + independent_epsilon([(z, COHORT / POPULATION)] * 2, DELTA)) / 2  # one cycle fits
    host_private(api, name, logistic_regression(), noise_multiplier=z, target_epsilon=budget)
    devices = [Device(api.url, name, seed, scale=0.1) for seed in range(1, COHORT + 1)]
    settings = devices[0].accepted["secure_aggregation"]
    # The clip travels to the devices, and the quantisation range follows it.
    assert settings["clip_norm"] == CLIP and settings["clipping_range"] == CLIP
    assert all(norm(flat(d.diff).astype(np.float64)) > 4 * CLIP for d in devices)
    run_secure_cycle(devices)

    cycle = completed_cycle(api, name, 1)
    assert cycle["reported"] == COHORT
    start = tensors.decode(logistic_regression()[1])
    applied = applied_step(api, name, start)
    clipped_sum = np.sum([clipped(d) for d in devices], axis=0)
    # Each of the COHORT devices rounds each coordinate by under one step; the sum is divided by
    # GOAL; then the noise (6σ) and the float32 checkpoint.
    tolerance = (COHORT / GOAL * step(devices[0].settings.params()) + 6 * z * CLIP / GOAL + 1e-6)
    assert np.abs(applied - clipped_sum / GOAL).max() <= tolerance
    # Neither the unclipped updates nor the survivors' plain mean are what was released.
    unclipped_sum = np.sum([flat(d.diff).astype(np.float64) for d in devices], axis=0)
    assert np.abs(applied - unclipped_sum / GOAL).max() > 100 * tolerance
    assert np.abs(applied - clipped_sum / COHORT).max() > 10 * tolerance

    privacy = cycle["privacy"]
    assert privacy["sampling_rate"] == COHORT / POPULATION
    assert privacy["epsilon"] == pytest.approx(
        independent_epsilon([(z, COHORT / POPULATION)], DELTA), rel=1e-9)
    assert privacy["noise_stddev"] == pytest.approx(z * CLIP / GOAL)
    assert privacy["clip"] == privacy["next_clip"] == CLIP
    process = privacy_of(api, name)
    assert (process["status"], process["finished_because"]) == ("finished", "privacy_budget")


def test_the_noise_on_the_unmasked_sum_has_the_configured_standard_deviation(api):
    name = unique_name("dpsec")
    z = 1.0
    model = wide_linear()
    host_private(api, name, model, noise_multiplier=z)
    devices = [Device(api.url, name, seed, checkpoint=model[1]) for seed in range(1, COHORT + 1)]
    assert devices[0].accepted["secure_aggregation"]["clip_norm"] == CLIP
    run_secure_cycle(devices)

    privacy = completed_cycle(api, name, 1)["privacy"]
    residual = applied_step(api, name, tensors.decode(model[1])) - np.sum(
        [clipped(d) for d in devices], axis=0) / GOAL
    expected = z * CLIP / GOAL
    # The sample standard deviation of n = 102,500 normals is off by ~1/√(2n) = 0.22 %.
    assert abs(residual.std() / expected - 1) < 0.02
    assert abs(residual.mean()) < 5 * expected / math.sqrt(residual.size)
    assert privacy["noise_stddev"] == pytest.approx(expected)
    assert privacy["epsilon"] == pytest.approx(
        independent_epsilon([(z, COHORT / POPULATION)], DELTA), rel=1e-9)
    assert privacy_of(api, name)["privacy"]["epsilon"] == privacy["epsilon"]
