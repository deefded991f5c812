"""Assignment leases: configured, derived from observed report times, bounded by the cycle; the
open cycle's table of outstanding leases and its earliest end."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from fedgrid_node.cycles.leases import MIN_DERIVED_LEASE_SECONDS, lease_seconds
from fedgrid_node.cycles.open_cycle import Leases


def test_a_configured_lease_is_used_as_is():
    assert lease_seconds(12.5, 600, [1.0] * 50) == 12.5


def test_without_observations_the_lease_is_the_cycle():
    assert lease_seconds(None, 600, []) == 600
    assert lease_seconds(None, 600, [1.0, 2.0]) == 600


def test_the_derived_lease_is_three_times_the_90th_percentile():
    times = [10.0] * 90 + [40.0] * 10  # the 90th percentile is 40 s
    assert lease_seconds(None, 600, times) == 120.0


def test_the_derived_lease_has_a_floor_and_never_outlives_the_cycle():
    assert lease_seconds(None, 600, [0.2] * 20) == MIN_DERIVED_LEASE_SECONDS
    assert lease_seconds(None, 100, [80.0] * 20) == 100


def test_the_lease_table_always_knows_its_earliest_end():
    """Every way the engine changes its outstanding leases (new places, expiries and reports
    taking them out, a resume giving all fresh ones, a close clearing them) leaves `earliest`
    equal to the minimum."""
    start = datetime(2026, 1, 1)
    rng = random.Random(7)
    leases = Leases({1: start + timedelta(seconds=50), 2: start + timedelta(seconds=20)})
    assert leases.earliest() == start + timedelta(seconds=20)
    for step in range(3000):
        action = rng.choice(["add", "add", "change", "pop", "del", "clear", "update"])
        moment = start + timedelta(seconds=rng.randrange(1000))
        if action == "add":
            leases[1000 + step] = moment
        elif action == "change" and leases:
            leases[rng.choice(list(leases))] = moment
        elif action == "pop":
            leases.pop(rng.choice([*leases, -1]), None)
        elif action == "del" and leases:
            del leases[rng.choice(list(leases))]
        elif action == "clear" and rng.random() < 0.02:
            leases.clear()
        elif action == "update":
            leases.update({2000 + step: moment})
        assert leases.earliest() == min(leases.values(), default=None), (step, action)
