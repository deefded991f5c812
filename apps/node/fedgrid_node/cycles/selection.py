"""Who gets a place in a cycle, and when a rejected device should come back (pace steering).

Pure decisions over counts and settings, so they are testable without a database or a clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .pace import MIN_TIMEOUT_SECONDS, CycleCounts
from .server_config import ServerConfig

__all__ = ["CycleCounts", "Decision", "Speeds", "decide", "jittered"]

# Rejected devices are told to come back after the wait plus up to this fraction more, so that a
# crowd rejected together does not return together (Bonawitz et al. 2019, "pace steering").
JITTER_FRACTION = 0.1


@dataclass(frozen=True)
class Speeds:
    ping_ms: float | None = None
    download_mbps: float | None = None
    upload_mbps: float | None = None


@dataclass(frozen=True)
class Decision:
    accepted: bool
    reason: str | None = None  # why a rejection happened (a stable code)
    timeout: float | None = None  # seconds until asking again is worthwhile


def jittered(seconds: float, rng: random.Random) -> float:
    base = max(MIN_TIMEOUT_SECONDS, seconds)
    return round(base * (1.0 + rng.uniform(0.0, JITTER_FRACTION)), 3)


def speed_failure(config: ServerConfig, speeds: Speeds) -> str | None:
    """The gate a device's measured speeds fail, or None. Missing values fail a configured gate."""
    if config.minimum_download_speed is not None and (
        speeds.download_mbps is None or speeds.download_mbps < config.minimum_download_speed
    ):
        return "download_too_slow"
    if config.minimum_upload_speed is not None and (
        speeds.upload_mbps is None or speeds.upload_mbps < config.minimum_upload_speed
    ):
        return "upload_too_slow"
    if config.maximum_ping is not None and (
        speeds.ping_ms is None or speeds.ping_ms > config.maximum_ping
    ):
        return "ping_too_high"
    return None


def decide(
    config: ServerConfig,
    counts: CycleCounts,
    speeds: Speeds,
    *,
    cycles_since_last_assignment: int | None,
    rng: random.Random,
) -> Decision:
    """Accept or reject one cycle request.

    ``cycles_since_last_assignment`` is None for a worker never assigned in this process.
    """
    until_next_cycle = counts.seconds_until_next_cycle(config.max_diffs)
    gate = speed_failure(config, speeds)
    if gate is not None:
        return Decision(False, gate, jittered(until_next_cycle, rng))
    cooldown = config.do_not_reuse_workers_until_cycle
    if cycles_since_last_assignment is not None and cycles_since_last_assignment < cooldown:
        cycles_to_wait = cooldown - cycles_since_last_assignment
        # The current cycle's remainder, then whole cycles of the typical observed length (the
        # cycle length while none was observed).
        whole_cycle = counts.typical_cycle_seconds or config.cycle_length
        wait = until_next_cycle + (cycles_to_wait - 1) * whole_cycle
        return Decision(False, "worker_cooling_down", jittered(wait, rng))
    free_places = config.max_workers - counts.places_taken
    if free_places <= 0:
        return Decision(False, "cycle_full", jittered(counts.seconds_until_a_place(config.max_diffs), rng))
    if config.pool_selection == "random":
        # Accept with the probability that spreads the free places over the requests expected in
        # the rest of the cycle (the arrival rate so far times the time left), so late devices get
        # places too instead of the first `max_workers` to arrive.
        rate = counts.requests / max(counts.elapsed_seconds, 1e-3)
        expected_requests = max(1.0, rate * counts.remaining_seconds)
        if rng.random() >= min(1.0, free_places / expected_requests):
            retry = min(until_next_cycle, max(MIN_TIMEOUT_SECONDS, config.cycle_length / 10))
            return Decision(False, "not_selected", jittered(retry, rng))
    return Decision(True)
