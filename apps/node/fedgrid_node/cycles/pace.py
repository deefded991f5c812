"""Pace steering: when a device that cannot have a place now should come back.

A device turned away (the cycle is full, it already reported, it is cooling down) is told a
`timeout` in seconds. Telling it the time to the deadline stalls training: the cycle may reach
its goal a few seconds later, and the next one then waits for devices that are all asleep
(Bonawitz et al. 2019 steer devices by the *expected* round time instead). So the estimate uses,
in this order, what the Node has observed:

1. the current cycle's report rate, from its first report on: the time to the goal at that rate;
2. else the typical duration of the process's recent cycles, minus the time this one has run;
3. else (nothing observed yet) a short probe interval, a tenth of the cycle length, 1-60 s.

Places can also open before the next cycle: an accepted device whose lease runs out frees its
place, so a device turned away from a full cycle comes back by the earliest lease expiry.
Nothing is ever later than the deadline. Devices that long-poll (`wait`) learn of an opening
at once anyway; the estimate bounds how often the rest ask.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_TIMEOUT_SECONDS = 1.0
MAX_PROBE_SECONDS = 60.0


@dataclass(frozen=True)
class CycleCounts:
    places_taken: int  # places held now: reported, plus accepted with a live lease
    requests: int  # cycle requests seen in this cycle so far, accepted or not
    elapsed_seconds: float
    remaining_seconds: float  # until the deadline
    reported: int = 0  # reports acknowledged in this cycle so far
    cycle_length: float = 3600.0
    typical_cycle_seconds: float | None = None  # median duration of recent completed cycles
    next_lease_expiry_seconds: float | None = None  # until the first outstanding lease ends

    def seconds_until_next_cycle(self, goal: int) -> float:
        """The expected wait until the next cycle opens (see the module docstring)."""
        if self.reported > 0 and self.elapsed_seconds > 0:
            rate = self.reported / self.elapsed_seconds
            estimate = max(0, goal - self.reported) / rate
        elif self.typical_cycle_seconds is not None:
            estimate = self.typical_cycle_seconds - self.elapsed_seconds
        else:
            estimate = min(MAX_PROBE_SECONDS, self.cycle_length / 10)
        return max(0.0, min(self.remaining_seconds, estimate))

    def seconds_until_a_place(self, goal: int) -> float:
        """For a full cycle: a place frees at the next cycle, or when a lease runs out first."""
        wait = self.seconds_until_next_cycle(goal)
        if self.next_lease_expiry_seconds is not None:
            wait = min(wait, self.next_lease_expiry_seconds)
        return max(0.0, wait)


def typical_duration(durations: Sequence[float]) -> float | None:
    """The median of recent cycle durations (robust to one cycle that waited out a deadline)."""
    return statistics.median(durations) if durations else None
