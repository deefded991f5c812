"""DP-FedAvg (McMahan et al. 2018) with adaptive clipping (Andrew et al. 2021) and its accountant.

The accountant's ε is compared with Google's dp-accounting library driven independently (one
`compose` per cycle, PLD beside RDP as a sanity bound); the noise's standard deviation is tested
statistically with a fixed seed; and against real Nodes (both database backends): a malicious
update's pull is bounded by the clip, the budget finishes the process, a restart reports the same
ε and keeps accounting from there.
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
import requests
from dp_accounting import pld, rdp

from fedgrid.cli import main as cli_main
from fedgrid_node.cycles.privacy.accountant import epsilon
from fedgrid_node.cycles.privacy.adaptive_clipping import next_clip
from fedgrid_node.cycles.privacy.dp_fedavg import noised_mean, update_noise_multiplier
from fedgrid_plans import tensors
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, random_diff, unique_name

from .test_cycle_engine import cycles_of, host, request_place, wait_for

# ----------------------------------------------------------------------------- units


def independent_epsilon(steps, delta):
    accountant = rdp.RdpAccountant()
    for noise_multiplier, rate in steps:
        accountant.compose(dp_accounting.PoissonSampledDpEvent(
            rate, dp_accounting.GaussianDpEvent(noise_multiplier)))
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize("steps", [
    [(1.1, 0.01)] * 100,
    [(0.8, 0.05)] * 3 + [(1.3, 0.02)] * 7 + [(0.8, 0.05)] * 2,
    [(2.0, 1.0)],
])
def test_epsilon_is_the_librarys_for_the_same_steps(steps):
    assert epsilon(steps, 1e-5) == pytest.approx(independent_epsilon(steps, 1e-5), rel=1e-9)


def test_rdp_never_reports_less_than_pld():
    steps = [(1.0, 0.02)] * 50
    accountant = pld.PLDAccountant()
    accountant.compose(dp_accounting.PoissonSampledDpEvent(0.02, dp_accounting.GaussianDpEvent(1.0)), 50)
    assert epsilon(steps, 1e-5) >= accountant.get_epsilon(1e-5) * 0.999


def test_the_noise_has_the_configured_standard_deviation():
    rng = np.random.default_rng(20260926)
    size = 2_000_000
    sums = {"w": np.zeros((1000, size // 1000)), "b": np.full(7, 20.0)}
    noised = noised_mean(sums, expected_reports=4, stddev=0.3, rng=rng)
    sample = noised["w"].reshape(-1)
    # The sample std of n normals has std σ/√(2n) ≈ 1.5e-4 here: 5e-4 is over three of them.
    assert abs(sample.std() - 0.3) < 5e-4
    assert abs(sample.mean()) < 5 * 0.3 / math.sqrt(size)
    assert noised["b"].shape == (7,) and abs(noised["b"].mean() - 5.0) < 1.5  # 20 / 4, plus noise


def test_adaptive_clipping_splits_the_noise_as_andrew_et_al_theorem_1():
    z_update = update_noise_multiplier(1.0, 5.0)
    assert (z_update ** -2 + (2 * 5.0) ** -2) ** -0.5 == pytest.approx(1.0)
    assert update_noise_multiplier(1.0, None) == 1.0
    with pytest.raises(ValueError):
        update_noise_multiplier(2.0, 1.0)


def test_the_clip_moves_geometrically_towards_the_target_quantile():
    rng = np.random.default_rng(5)
    noise = np.random.default_rng(5).normal(0.0, 0.5)
    clip = next_clip(2.0, unclipped=8, expected_reports=10, target_quantile=0.5,
                     learning_rate=0.2, count_stddev=0.5, rng=rng)
    assert clip == pytest.approx(2.0 * math.exp(-0.2 * ((8 + noise) / 10 - 0.5)))
    # Every update within the clip: it shrinks; none: it grows.
    quiet = dict(expected_reports=10, target_quantile=0.5, learning_rate=0.2, count_stddev=1e-9)
    assert next_clip(1.0, unclipped=10, rng=rng, **quiet) < 1.0 < next_clip(1.0, unclipped=0, rng=rng, **quiet)


# ----------------------------------------------------------------------------- a real Node

GOAL = 3
POPULATION = 300
DELTA = 1e-4
MODEL = logistic_regression()


def dp_settings(**overrides):
    return {"noise_multiplier": 1.0, "population": POPULATION, "clip": 0.5, "delta": DELTA,
            **overrides}


def library_epsilon(cycles, noise_multiplier=1.0):
    return independent_epsilon([(noise_multiplier, GOAL / POPULATION)] * cycles, DELTA)


def run_cycle(api, name, diffs, num_samples=10):
    for diff in diffs:
        worker, body = request_place(api, name)
        assert body["status"] == "accepted", body
        answer = api.call("report", {"worker_id": worker, "request_key": body["request_key"],
                                     "num_samples": num_samples},
                          blobs={"diff": tensors.encode(diff)})
        assert answer.status == 200, answer.body


def honest_diffs(seeds):
    return [random_diff(MODEL[1], seed) for seed in seeds]


def privacy_of(api, name):
    listing = api.call("processes", admin=True).body["processes"]
    return next(p for p in listing if p["model"] == name)


@pytest.fixture
def api(shared_node):
    client = HttpApi(shared_node.url, shared_node.admin_token)
    yield client
    client.close()


def test_each_cycle_reports_the_epsilon_of_the_cycles_so_far(api, shared_node):
    name = unique_name("dp")
    host(api, name, max_diffs=GOAL, cycle_length=600, differential_privacy=dp_settings())
    assert privacy_of(api, name)["privacy"]["epsilon"] == 0.0
    for cycle in range(2):
        run_cycle(api, name, honest_diffs(range(10 * cycle, 10 * cycle + GOAL)))
    cycles = cycles_of(api, name)
    for number in (1, 2):
        privacy = cycles[number - 1]["privacy"]
        assert privacy["epsilon"] == pytest.approx(library_epsilon(number), rel=1e-9)
        assert privacy["sampling_rate"] == GOAL / POPULATION and privacy["delta"] == DELTA
        assert privacy["noise_stddev"] == pytest.approx(1.0 * 0.5 / GOAL)
    assert "privacy" not in cycles[2]  # the open cycle has spent nothing yet
    listed = privacy_of(api, name)["privacy"]
    assert listed["epsilon"] == cycles[1]["privacy"]["epsilon"] and listed["cycles"] == 2
    text = requests.get(f"{shared_node.url}/metrics", timeout=10,
                        headers={"Authorization": f"Bearer {shared_node.admin_token}"}).text
    line = next(row for row in text.splitlines()
                if row.startswith("fedgrid_privacy_epsilon{") and f'model="{name}"' in row)
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(listed["epsilon"])


def test_the_cli_and_the_dashboard_show_epsilon(api, shared_node, capsys):
    name = unique_name("dp")
    host(api, name, max_diffs=GOAL, cycle_length=600,
         differential_privacy=dp_settings(target_epsilon=50.0))
    run_cycle(api, name, honest_diffs([7, 8, 9]))
    assert cli_main(["cycles", name, "--url", shared_node.url,
                     "--admin-token", shared_node.admin_token]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"ε {library_epsilon(1):.3f}" in lines[0] and "ε" not in lines[1]  # cycle 2 is open
    browser = requests.Session()
    browser.post(f"{shared_node.url}/dashboard/login", data={"token": shared_node.admin_token},
                 timeout=10)
    page = browser.get(f"{shared_node.url}/", timeout=10).text
    section = page[page.index(f'data-process="{name}"'):]
    assert (f"differential privacy: ε = <span data-figure=\"epsilon\">{library_epsilon(1):.3g}"
            "</span>") in section.split("</section>")[0]
    assert "(budget 50)" in section.split("</section>")[0]


def test_clipping_bounds_a_malicious_update(api):
    name = unique_name("dp")
    clip, z = 0.5, 0.01  # little noise, so the bound itself is what is measured
    host(api, name, max_diffs=GOAL, cycle_length=600,
         differential_privacy=dp_settings(noise_multiplier=z, clip=clip))
    honest = honest_diffs([1, 2])
    malicious = {n: (v * 1e5).astype(np.float32) for n, v in random_diff(MODEL[1], 3).items()}
    run_cycle(api, name, [honest[0], malicious, honest[1]], num_samples=1000)
    start = tensors.decode(MODEL[1])
    after = tensors.decode(api.call("retrieve-model", {"name": name, "checkpoint": 2},
                                    admin=True).content)
    applied = {n: start[n].astype(np.float64) - after[n] for n in start}

    def norm(d):
        return math.sqrt(sum(float(np.sum(np.asarray(v, np.float64) ** 2)) for v in d.values()))

    clipped = [{n: v.astype(np.float64) * min(1.0, clip / norm(d)) for n, v in d.items()}
               for d in (honest[0], malicious, honest[1])]
    expected = {n: sum(d[n] for d in clipped) / GOAL for n in start}
    size = sum(v.size for v in start.values())
    noise_norm = norm({n: applied[n] - expected[n] for n in start})
    # What is left is the noise: std z·clip/GOAL per coordinate, a norm of about that × √size.
    assert noise_norm < 1.5 * z * clip / GOAL * math.sqrt(size)
    honest_part = {n: (clipped[0][n] + clipped[2][n]) / GOAL for n in start}
    assert norm({n: applied[n] - honest_part[n] for n in start}) <= clip / GOAL + noise_norm


def test_adaptive_clipping_carries_the_clip_to_the_next_cycle(api):
    name = unique_name("dp")
    host(api, name, max_diffs=GOAL, cycle_length=600, differential_privacy=dp_settings(
        target_unclipped_quantile=0.5, clip=10.0, clipped_count_stddev=1.0))
    run_cycle(api, name, honest_diffs([1, 2, 3]))  # norms ~0.25: all within 10, the clip shrinks
    run_cycle(api, name, honest_diffs([4, 5, 6]))
    first, second = (c["privacy"] for c in cycles_of(api, name)[:2])
    assert first["clip"] == 10.0 and second["clip"] == first["next_clip"]
    assert first["update_noise_multiplier"] == pytest.approx((1.0 - 0.25) ** -0.5)
    assert privacy_of(api, name)["privacy"]["clip"] == second["next_clip"]


def test_the_budget_finishes_training(api):
    name = unique_name("dp")
    budget = (library_epsilon(2) + library_epsilon(3)) / 2  # two cycles fit, a third would not
    host(api, name, max_diffs=GOAL, cycle_length=600,
         differential_privacy=dp_settings(target_epsilon=budget))
    run_cycle(api, name, honest_diffs([1, 2, 3]))
    run_cycle(api, name, honest_diffs([4, 5, 6]))
    process = privacy_of(api, name)
    assert process["status"] == "finished" and process["finished_because"] == "privacy_budget"
    assert process["privacy"]["epsilon"] <= budget
    cycles = cycles_of(api, name)
    assert len(cycles) == 2 and cycles[-1]["finished_because"] == "privacy_budget"
    worker = api.call("authenticate", {"model_name": name}).body["worker_id"]
    answer = api.call("cycle-request", {"worker_id": worker, "model": name, "version": "1"})
    assert answer.body["status"] == "rejected" and answer.body["reason"] == "training_finished"


@pytest.mark.parametrize(("settings", "field", "says"), [
    ({"aggregator": "median"}, "server_config.aggregator", None),
    ({"norm_bound": 1.0}, "server_config.norm_bound", None),
    ({"differential_privacy": dp_settings(population=2)},
     "server_config.differential_privacy.population", "below max_diffs"),
    ({"differential_privacy": dp_settings(target_epsilon=0.001)},
     "server_config.differential_privacy.target_epsilon", None),
    ({"differential_privacy": dp_settings(target_unclipped_quantile=0.5)},  # σ_b = 3/20
     "server_config.differential_privacy.noise_multiplier", None),
    ({"differential_privacy": {"noise_multiplier": 1.0}},
     "server_config.differential_privacy.population", None),
    ({"differential_privacy": dp_settings(clip_at="device")},
     "server_config.differential_privacy.clip_at", "needs secure_aggregation"),
    ({"differential_privacy": dp_settings(clip_at="everywhere")},
     "server_config.differential_privacy.clip_at", "'node' or 'device'"),
    ({"differential_privacy": dp_settings(clp=1.0)}, "server_config.differential_privacy.clp",
     "did you mean clip?"),
    # Under secure aggregation the Node never sees an update: only the devices can clip ...
    ({"secure_aggregation": True}, "server_config.differential_privacy.clip_at",
     "must be \"device\" with secure_aggregation"),
    ({"secure_aggregation": True, "differential_privacy": dp_settings(clip_at="node")},
     "server_config.differential_privacy.clip_at", "must be \"device\""),
    # ... with a fixed clip: adaptive clipping counts the unclipped updates, which it cannot.
    *[({"secure_aggregation": True, "differential_privacy": dp_settings(clip_at="device", **{
        key: value})}, f"server_config.differential_privacy.{key}",
       "adaptive clipping needs the count of updates within the clip")
      for key, value in (("target_unclipped_quantile", 0.5), ("clip_learning_rate", 0.1),
                         ("clipped_count_stddev", 1.0))],
    # Every survivor of the cohort (max_workers, 4 here) is in the sum: the sampling rate's count.
    ({"secure_aggregation": True, "differential_privacy": dp_settings(clip_at="device",
                                                                      population=3)},
     "server_config.differential_privacy.population", "max_workers (the secure cohort) (4)"),
])
def test_settings_that_cannot_run_are_refused_by_name(api, settings, field, says):
    config = {"max_diffs": GOAL, "differential_privacy": dp_settings(), **settings}
    answer = api.call("host-training", {"name": unique_name(), "version": "1",
                                        "server_config": config},
                      blobs={"model": MODEL[1], "plans/training_plan": MODEL[0]}, admin=True)
    assert answer.status == 400 and answer.error_code == "server_config_invalid", answer.body
    assert answer.body["error"]["details"]["field"] == field
    if says:
        assert says in answer.body["error"]["message"], answer.body["error"]["message"]


@pytest.mark.parametrize("backend", database_backends())
def test_a_restart_reports_the_same_epsilon_and_keeps_accounting(node_factory, backend):
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    host(api, "private", max_diffs=GOAL, cycle_length=600, differential_privacy=dp_settings())
    run_cycle(api, "private", honest_diffs([1, 2, 3]))
    before = privacy_of(api, "private")["privacy"]
    node.kill()
    node = node.restart()
    try:
        api = HttpApi(node.url, node.admin_token)
        assert privacy_of(api, "private")["privacy"] == before
        run_cycle(api, "private", honest_diffs([4, 5, 6]))
        assert cycles_of(api, "private")[1]["privacy"]["epsilon"] == pytest.approx(
            library_epsilon(2), rel=1e-9)
    finally:
        node.stop()


def scipy_loaded(pid: int) -> bool:
    """Whether the process has mapped scipy's special functions (what the accountant imports)."""
    with open(f"/proc/{pid}/maps") as maps:
        return any("scipy/special/" in line for line in maps)


def test_the_accountant_is_loaded_before_the_first_close_not_at_it(node_factory):
    """Importing dp-accounting (scipy) takes ~0.7 s: a differentially private process's open cycle
    has the Node load it on the thread pool, so that its first close does not stall the hub."""
    node = node_factory()
    api = HttpApi(node.url, node.admin_token)
    host(api, unique_name("plain"), max_diffs=2, cycle_length=600)
    assert not scipy_loaded(node.process.pid)  # not at start, nor for other processes
    host(api, unique_name("private"), max_diffs=2, cycle_length=600,
         differential_privacy={"noise_multiplier": 1.0, "population": 1000})
    wait_for(lambda: scipy_loaded(node.process.pid), "the accountant loaded in the background")
