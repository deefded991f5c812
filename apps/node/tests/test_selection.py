"""Selection decisions: gates, cool-down, capacity, random pool, and pace-steering timeouts."""

from __future__ import annotations

import random

from fedgrid_node.cycles.selection import CycleCounts, Speeds, decide
from fedgrid_node.cycles.server_config import parse_server_config

FAST = Speeds(ping_ms=10, download_mbps=100, upload_mbps=100)


def counts(taken=0, requests=1, elapsed=10.0, remaining=50.0, **more):
    return CycleCounts(places_taken=taken, requests=requests, elapsed_seconds=elapsed,
                       remaining_seconds=remaining, **more)


def test_capacity_rejects_until_the_next_cycle_with_jitter():
    config = parse_server_config({"max_diffs": 2, "max_workers": 3, "cycle_length": 600})
    rng = random.Random(1)
    assert decide(config, counts(taken=2), FAST, cycles_since_last_assignment=None, rng=rng).accepted
    # Cycle 3 of a process whose cycles took 20 s, 10 s into it: back in about 10 s.
    full = counts(taken=3, elapsed=10, remaining=590, cycle_length=600, typical_cycle_seconds=20)
    timeouts = [decide(config, full, FAST, cycles_since_last_assignment=None, rng=rng)
                for _ in range(50)]
    assert all(d.reason == "cycle_full" for d in timeouts)
    values = [d.timeout for d in timeouts]
    assert min(values) >= 10.0 and max(values) <= 11.0 and len(set(values)) > 10


def test_reuse_cool_down_counts_cycles():
    config = parse_server_config({"do_not_reuse_workers_until_cycle": 3, "cycle_length": 100})
    rng = random.Random(0)
    decision = decide(config, counts(elapsed=60, remaining=40, cycle_length=100,
                                     typical_cycle_seconds=80),
                      FAST, cycles_since_last_assignment=1, rng=rng)
    assert decision.reason == "worker_cooling_down"
    # the rest of this cycle (typically 80 s, 60 s gone) plus one more typical cycle, plus jitter
    assert 100 <= decision.timeout <= 110
    assert decide(config, counts(), FAST, cycles_since_last_assignment=3, rng=rng).accepted
    assert decide(config, counts(), FAST, cycles_since_last_assignment=None, rng=rng).accepted


def test_speed_gates_and_missing_measurements():
    config = parse_server_config({"minimum_upload_speed": 5, "maximum_ping": 100})
    rng = random.Random(0)
    slow = Speeds(ping_ms=10, download_mbps=1, upload_mbps=4.9)
    assert decide(config, counts(), slow, cycles_since_last_assignment=None, rng=rng).reason == (
        "upload_too_slow"
    )
    laggy = Speeds(ping_ms=150, upload_mbps=50)
    assert decide(config, counts(), laggy, cycles_since_last_assignment=None, rng=rng).reason == (
        "ping_too_high"
    )
    assert decide(config, counts(), Speeds(), cycles_since_last_assignment=None, rng=rng).reason == (
        "upload_too_slow"
    )


def test_random_pool_spreads_acceptances_over_the_cycle():
    # 10 places, requests arriving at 10/s for 100 s: about 1 in 100 should be accepted early on,
    # instead of the first 10 requests taking every place.
    config = parse_server_config({"max_diffs": 10, "max_workers": 10, "pool_selection": "random",
                                  "cycle_length": 100})
    rng = random.Random(7)
    early = [
        decide(config, counts(taken=0, requests=100, elapsed=10, remaining=90), FAST,
               cycles_since_last_assignment=None, rng=rng)
        for _ in range(1000)
    ]
    accepted = sum(d.accepted for d in early)
    assert 3 <= accepted <= 30
    rejected = [d for d in early if not d.accepted]
    assert all(d.reason == "not_selected" and 0 < d.timeout <= 11 for d in rejected)
    iterate = parse_server_config({"max_diffs": 10, "max_workers": 10, "cycle_length": 100})
    assert all(
        decide(iterate, counts(taken=0, requests=100, elapsed=10, remaining=90), FAST,
               cycles_since_last_assignment=None, rng=rng).accepted
        for _ in range(100)
    )


def test_full_cycle_timeout_follows_the_report_rate_not_the_deadline():
    config = parse_server_config({"max_diffs": 10, "max_workers": 13, "cycle_length": 3600})
    rng = random.Random(2)
    # 13 places taken, 5 of 10 reports in after 10 s: the goal should close it ~10 s from now.
    busy = counts(taken=13, requests=20, elapsed=10, remaining=3590, reported=5, cycle_length=3600)
    decision = decide(config, busy, FAST, cycles_since_last_assignment=None, rng=rng)
    assert decision.reason == "cycle_full" and 10 <= decision.timeout <= 11
    # One report is enough to extrapolate from (a quarter of the goal was needed before, and the
    # devices then slept until the deadline while the cycle reached its goal: a stall).
    one = counts(taken=13, requests=20, elapsed=10, remaining=3590, reported=1, cycle_length=3600)
    assert 90 <= decide(config, one, FAST, cycles_since_last_assignment=None, rng=rng).timeout <= 99
    # Nothing observed at all: a probe interval (a tenth of the cycle, at most 60 s).
    quiet = counts(taken=13, requests=20, elapsed=10, remaining=3590, cycle_length=3600)
    assert 60 <= decide(config, quiet, FAST, cycles_since_last_assignment=None, rng=rng).timeout <= 66


def test_a_lease_running_out_brings_a_turned_away_device_back_earlier():
    config = parse_server_config({"max_diffs": 10, "max_workers": 13, "cycle_length": 3600})
    rng = random.Random(3)
    full = counts(taken=13, elapsed=10, remaining=3590, cycle_length=3600, typical_cycle_seconds=300,
                  next_lease_expiry_seconds=4)
    decision = decide(config, full, FAST, cycles_since_last_assignment=None, rng=rng)
    assert decision.reason == "cycle_full" and 4 <= decision.timeout <= 4.4


def test_no_timeout_is_later_than_the_deadline():
    config = parse_server_config({"max_diffs": 10, "max_workers": 13, "cycle_length": 3600})
    rng = random.Random(4)
    late = counts(taken=13, elapsed=3595, remaining=5, reported=1, cycle_length=3600)
    assert 5 <= decide(config, late, FAST, cycles_since_last_assignment=None, rng=rng).timeout <= 5.5
