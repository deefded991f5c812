"""The Network's per-minute activity counts (fedgrid_network.activity), on a clock of our own."""

from __future__ import annotations

import pytest

from fedgrid_network.activity import WINDOW_MINUTES, Activity


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_nodes_count_as_online_for_the_minutes_offline_after_covers():
    clock = Clock(600 * 60)  # on a minute boundary
    activity = Activity(offline_after=90, clock=clock)  # a heartbeat counts for 2 minutes
    activity.heartbeat("alice")
    activity.heartbeat("bob")
    clock.now += 60
    activity.heartbeat("alice")
    clock.now += 60  # minute 3: alice's last heartbeat was a minute ago, bob's two
    clock.now += 60  # minute 4: nobody for two minutes
    window = activity.window()
    assert window.offsets == [-3, -2, -1, 0]  # only since the counting started
    assert window.nodes_online() == [2, 2, 1, 0]
    assert window.heartbeats_of("alice") == [1, 1, 0, 0] and window.nodes() == ["alice", "bob"]


def test_rates_are_per_minute_over_the_time_that_passed():
    clock = Clock(1000 * 60)
    activity = Activity(offline_after=30, clock=clock)
    for _ in range(10):
        activity.routed("alice", "mnist", "1")
    clock.now += 30
    window = activity.window()
    # Ten routes in the 30 s this process has counted: 20 a minute, not 10 / 5 minutes.
    assert window.rate(window.routes_to_node("alice")) == pytest.approx(20)
    clock.now += 10 * 60
    for _ in range(6):
        activity.routed("bob", "mnist", "1")
    clock.now += 15
    window = activity.window()
    # Six routes in the last five buckets: four whole minutes and 45 s of the current one.
    assert window.rate(window.routes_to_node("bob")) == pytest.approx(6 / 4.75)
    assert window.routes_to_model("alice", "mnist", "1")[-1] == 0
    assert window.models() == [("alice", "mnist", "1"), ("bob", "mnist", "1")]


def test_only_the_last_hour_is_kept():
    clock = Clock(0)
    activity = Activity(offline_after=30, clock=clock)
    for _ in range(3 * WINDOW_MINUTES):
        activity.route_refused()
        clock.now += 60
    window = activity.window()
    assert len(window.offsets) == WINDOW_MINUTES and window.offsets[-1] == 0
    assert sum(window.refused) == WINDOW_MINUTES - 1  # the current minute has none yet
    assert len(activity._minutes) <= WINDOW_MINUTES
