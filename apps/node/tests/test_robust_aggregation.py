"""Robust aggregation: coordinate-wise median and trimmed mean (Yin et al. 2018), norm bounding
(Sun et al. 2019).

Each rule is checked exactly against numpy on small inputs, then against a real Node (both
database backends) where a minority of devices send huge diffs claiming many samples: the plain
mean is dragged away from the honest devices' mean, the robust rules are not.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedgrid_node.cycles.aggregation import RunningWeightedSum
from fedgrid_node.cycles.aggregators import (
    FoldRule,
    Mean,
    Median,
    TrimmedMean,
    l2_norm,
    stored_reports,
)
from fedgrid_node.cycles.aggregators.stored_reports import ReportSpool
from fedgrid_plans import tensors
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, random_diff, unique_name

from .test_cycle_engine import cycles_of, host, request_place

SPEC = {"w": ((5, 3), np.dtype("float32")), "b": ((3,), np.dtype("float32")),
        "scale": ((), np.dtype("float32"))}


def random_reports(seed: int, count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{name: rng.standard_normal(shape).astype(np.float32) for name, (shape, _) in SPEC.items()}
            for _ in range(count)]


def stacked(reports, name):
    return np.stack([r[name] for r in reports]).astype(np.float64)


def spooled(reports, aggregator, *, clip=None):
    with ReportSpool(SPEC, len(reports), clip=clip) as spool:
        for index, report in enumerate(reports):
            spool.write(index, tensors.encode(report))
        return spool.combine(aggregator)


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of 4 coordinates: every block boundary falls inside or across tensors."""
    monkeypatch.setattr(stored_reports, "MIN_BLOCK_WIDTH", 4)
    monkeypatch.setattr(stored_reports, "BLOCK_BYTES", 1)


# ----------------------------------------------------------------------------- exact rules


@pytest.mark.parametrize("count", [1, 2, 5, 8])
def test_median_is_numpys_coordinate_wise_median(tiny_blocks, count):
    reports = random_reports(count, count)
    result = spooled(reports, Median())
    for name in SPEC:
        np.testing.assert_allclose(result[name], np.median(stacked(reports, name), axis=0),
                                   rtol=1e-6)
        assert result[name].shape == SPEC[name][0]


@pytest.mark.parametrize(("count", "fraction", "cut"), [(10, 0.1, 1), (10, 0.25, 2), (7, 0.3, 2),
                                                         (3, 0.2, 0), (9, 0.49, 4)])
def test_trimmed_mean_drops_the_fraction_at_each_end(tiny_blocks, count, fraction, cut):
    reports = random_reports(count + 100, count)
    aggregator = TrimmedMean(fraction)
    assert aggregator.trimmed(count) == cut
    result = spooled(reports, aggregator)
    for name in SPEC:
        ordered = np.sort(stacked(reports, name), axis=0)
        expected = ordered[cut:count - cut].mean(axis=0)
        np.testing.assert_allclose(result[name], expected, rtol=1e-6, atol=1e-7)


def test_the_spool_clips_each_report_before_the_rule(tiny_blocks):
    reports = random_reports(7, 5)
    reports[2] = {name: value * 1000 for name, value in reports[2].items()}
    result = spooled(reports, Median(), clip=1.5)
    clipped = []
    for report in reports:
        norm = np.sqrt(sum(np.sum(v.astype(np.float64) ** 2) for v in report.values()))
        clipped.append({n: v * min(1.0, 1.5 / norm) for n, v in report.items()})
    for name in SPEC:
        np.testing.assert_allclose(result[name], np.median(stacked(clipped, name), axis=0),
                                   rtol=1e-5, atol=1e-7)


def test_norm_bounding_folds_an_unweighted_mean_of_clipped_updates():
    reports = random_reports(11, 6)
    claimed = [1, 5, 10_000, 3, 2, 7]  # num_samples is ignored: one vote per report
    rule = FoldRule(Mean(weighted=False), clip=2.0)
    running = RunningWeightedSum(SPEC)
    for report, num_samples in zip(reports, claimed, strict=True):
        weight, coefficient, _ = rule.prepare(report, num_samples)
        running.fold(report, weight, coefficient)
    average = running.average()
    for name in SPEC:
        expected = np.mean([r[name].astype(np.float64) * min(1.0, 2.0 / l2_norm(r)) for r in reports],
                           axis=0)
        np.testing.assert_allclose(average[name], expected, rtol=1e-5, atol=1e-7)


def test_l2_norm_is_over_every_tensor_together():
    report = {"a": np.array([3.0], np.float32), "b": np.array([[4.0]], np.float32)}
    assert l2_norm(report) == 5.0
    assert FoldRule(Mean(weighted=False), clip=2.5).prepare(report, 9) == (1, 0.5, False)
    assert FoldRule(Mean(weighted=True)).prepare(report, 9) == (9, 9.0, True)


# ----------------------------------------------------------------------------- a real Node

HONEST, MALICIOUS = 7, 3


@pytest.fixture
def api(shared_node):
    client = HttpApi(shared_node.url, shared_node.admin_token)
    yield client
    client.close()


def attacked_cycle(api, **server_config):
    """One cycle of 7 honest devices and 3 that send 10⁴-times-larger diffs claiming 10⁶ samples.

    Returns (the new checkpoint's step start − checkpoint 2, the honest diffs, all diffs)."""
    name = unique_name("robust")
    host(api, name, max_diffs=HONEST + MALICIOUS, cycle_length=600, **server_config)
    start = tensors.decode(logistic_regression()[1])
    honest = [random_diff(logistic_regression()[1], seed) for seed in range(HONEST)]
    poisoned = [{n: (np.abs(v) * 1e4 + 50).astype(np.float32)
                 for n, v in random_diff(logistic_regression()[1], 100 + seed).items()}
                for seed in range(MALICIOUS)]
    # The attackers report in between the honest devices: the rules cannot depend on order.
    sent = honest[:3] + poisoned[:2] + honest[3:] + poisoned[2:]
    for diff in sent:
        worker, body = request_place(api, name)
        assert body["status"] == "accepted", body
        num_samples = 1_000_000 if any(diff is p for p in poisoned) else 20
        answer = api.call("report", {"worker_id": worker, "request_key": body["request_key"],
                                     "num_samples": num_samples},
                          blobs={"diff": tensors.encode(diff)})
        assert answer.status == 200, answer.body
    cycle = cycles_of(api, name)[0]
    assert cycle["status"] == "completed" and cycle["new_checkpoint"] == 2, cycle
    after = tensors.decode(api.call("retrieve-model", {"name": name, "checkpoint": 2},
                                    admin=True).content)
    applied = {n: start[n].astype(np.float64) - after[n] for n in start}
    return applied, honest, sent


def distance(a, b):
    return float(np.sqrt(sum(np.sum((a[n] - b[n]) ** 2) for n in a)))


def honest_mean(honest):
    return {n: np.mean([d[n].astype(np.float64) for d in honest], axis=0) for n in honest[0]}


def honest_spread(honest):
    """The bound on the distance from the honest mean: each coordinate's largest honest deviation."""
    mean = honest_mean(honest)
    return float(np.sqrt(sum(np.sum(np.max([np.abs(d[n] - mean[n]) for d in honest], axis=0) ** 2)
                             for n in mean)))


def within_honest_range(applied, honest, slack=1e-6):
    for name, value in applied.items():
        values = np.stack([d[name] for d in honest])
        if not ((value >= values.min(axis=0) - slack) & (value <= values.max(axis=0) + slack)).all():
            return False
    return True


def test_the_plain_mean_is_dragged_away_by_the_attackers(api):
    applied, honest, _ = attacked_cycle(api)
    assert distance(applied, honest_mean(honest)) > 1000  # the honest diffs are ~0.01
    assert not within_honest_range(applied, honest)


def test_the_median_stays_within_the_honest_values(api):
    applied, honest, sent = attacked_cycle(api, aggregator="median")
    assert within_honest_range(applied, honest)
    expected = {n: np.median(np.stack([d[n] for d in sent]).astype(np.float64), axis=0)
                for n in applied}
    assert distance(applied, expected) < 1e-5
    assert distance(applied, honest_mean(honest)) <= honest_spread(honest) + 1e-5


def test_the_trimmed_mean_cuts_the_attackers_off(api):
    applied, honest, sent = attacked_cycle(api, aggregator="trimmed_mean", trim_fraction=0.3)
    assert within_honest_range(applied, honest)
    ordered = {n: np.sort(np.stack([d[n] for d in sent]).astype(np.float64), axis=0) for n in applied}
    expected = {n: ordered[n][3:7].mean(axis=0) for n in applied}
    assert distance(applied, expected) < 1e-5
    assert distance(applied, honest_mean(honest)) <= honest_spread(honest) + 1e-5


def test_norm_bounding_caps_each_attackers_pull(api):
    bound = 0.5
    applied, honest, sent = attacked_cycle(api, norm_bound=bound)
    # Each of the 3 attackers moves the unweighted mean by at most bound / 10.
    total = HONEST + MALICIOUS
    honest_part = {n: sum(d[n].astype(np.float64) * min(1.0, bound / l2_norm(d)) for d in honest)
                   / total for n in applied}
    assert distance(applied, honest_part) <= MALICIOUS * bound / total + 1e-5
    expected = {n: sum(d[n].astype(np.float64) * min(1.0, bound / l2_norm(d)) for d in sent) / total
                for n in applied}
    assert distance(applied, expected) < 1e-5


def test_a_robust_rule_composes_with_a_server_optimizer(api):
    # FedAvgM's first step with learning rate 1 is the aggregate itself.
    applied, honest, _ = attacked_cycle(api, aggregator="median",
                                        strategy={"name": "fedavgm", "server_learning_rate": 1.0})
    assert within_honest_range(applied, honest)


@pytest.mark.parametrize(("server_config", "field"), [
    ({"aggregator": "median", "strategy": "hosted_averaging_plan"}, "server_config.aggregator"),
    ({"trim_fraction": 0.5}, "server_config.trim_fraction"),
    ({"norm_bound": 0}, "server_config.norm_bound"),
    ({"aggregator": "mode"}, "server_config.aggregator"),
])
def test_bad_aggregation_settings_are_refused_by_name(api, server_config, field):
    plan, checkpoint = logistic_regression()
    answer = api.call("host-training", {"name": unique_name(), "version": "1",
                                        "server_config": server_config},
                      blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)
    assert answer.status == 400 and answer.error_code == "server_config_invalid", answer.body
    assert answer.body["error"]["details"]["field"] == field


@pytest.mark.parametrize("backend", database_backends())
def test_a_restart_mid_cycle_keeps_the_reports_for_the_median(node_factory, backend):
    """The coordinate-wise rules keep no running sum: after a kill -9 the restored cycle counts
    its stored reports and the close still combines all of them."""
    node = node_factory(backend)
    api = HttpApi(node.url, node.admin_token)
    host(api, "median", max_diffs=5, cycle_length=600, aggregator="median")
    diffs = [random_diff(logistic_regression()[1], seed) for seed in range(5)]

    def send(api, diff):
        worker, body = request_place(api, "median")
        answer = api.call("report", {"worker_id": worker, "request_key": body["request_key"],
                                     "num_samples": 4}, blobs={"diff": tensors.encode(diff)})
        assert answer.status == 200, answer.body

    for diff in diffs[:3]:
        send(api, diff)
    node.kill()
    node = node.restart()
    try:
        api = HttpApi(node.url, node.admin_token)
        assert cycles_of(api, "median")[0]["reported"] == 3
        for diff in diffs[3:]:
            send(api, diff)
        start = tensors.decode(logistic_regression()[1])
        after = tensors.decode(api.call("retrieve-model", {"name": "median", "checkpoint": 2},
                                        admin=True).content)
        for name in start:
            expected = start[name] - np.median(np.stack([d[name] for d in diffs]), axis=0)
            np.testing.assert_allclose(after[name], expected, rtol=1e-6, atol=1e-7)
    finally:
        node.stop()


def test_the_median_combines_compressed_reports_as_decoded(api):
    """Stored reports are kept as received: an int8 model's median reads them back decoded."""
    from fedgrid.diff_encoding import encode_diff
    from fedgrid_node.cycles.diff_encoding import decode_accepted

    plan, checkpoint = logistic_regression()
    name = unique_name("robust-int8")
    hosted = api.call("host-training", {"name": name, "version": "1",
                                        "client_config": {"batch_size": 8, "diff_encoding": "int8"},
                                        "server_config": {"max_diffs": 3, "cycle_length": 600,
                                                          "aggregator": "median"}},
                      blobs={"model": checkpoint, "plans/training_plan": plan}, admin=True)
    assert hosted.status == 200, hosted.body
    sent = [encode_diff(random_diff(checkpoint, seed), "int8") for seed in range(3)]
    for body_bytes in sent:
        worker, body = request_place(api, name)
        answer = api.call("report", {"worker_id": worker, "request_key": body["request_key"],
                                     "num_samples": 10}, blobs={"diff": body_bytes})
        assert answer.status == 200, answer.body
    assert cycles_of(api, name)[0]["status"] == "completed"
    start = tensors.decode(checkpoint)
    after = tensors.decode(api.call("retrieve-model", {"name": name, "checkpoint": 2},
                                    admin=True).content)
    decoded = [decode_accepted(data, "int8") for data in sent]
    for tensor in start:
        median = np.median(np.stack([d[tensor] for d in decoded]), axis=0)
        np.testing.assert_allclose(start[tensor] - after[tensor], median, atol=1e-6)
