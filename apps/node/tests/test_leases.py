"""Assignment leases: configured, derived from observed report times, bounded by the cycle."""

from __future__ import annotations

from fedgrid_node.cycles.leases import MIN_DERIVED_LEASE_SECONDS, lease_seconds


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
