"""How long an accepted device may take to report before its place goes to another device.

`server_config.assignment_lease` sets it in seconds. By default it follows the fleet: three times
the 90th percentile of the time recent devices took from acceptance to report, and at least
`MIN_DERIVED_LEASE_SECONDS` (a slow device on a bad link must not lose work to one fast cycle's
statistics). Until `MIN_OBSERVATIONS` reports were seen nothing is known, and the lease is the
cycle length, i.e. the deadline, as before leases existed. A lease never outlives its cycle's
deadline.
"""

from __future__ import annotations

from collections.abc import Sequence

LEASE_FACTOR = 3.0
MIN_DERIVED_LEASE_SECONDS = 30.0
MIN_OBSERVATIONS = 3
OBSERVATION_WINDOW = 100  # the most recent report times considered


def lease_seconds(configured: float | None, cycle_length: float, report_times: Sequence[float]) -> float:
    if configured is not None:
        return configured
    if len(report_times) < MIN_OBSERVATIONS:
        return cycle_length
    ordered = sorted(report_times)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return min(cycle_length, max(MIN_DERIVED_LEASE_SECONDS, LEASE_FACTOR * p90))
