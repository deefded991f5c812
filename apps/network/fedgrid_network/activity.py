"""What the Network did minute by minute, for its dashboard: routes, heartbeats, Nodes online.

Counted in memory by the process that served each request, in one-minute buckets over the last
`WINDOW_MINUTES`; nothing is written to the database for it (a route stays a read). So the figures
start empty when the Network starts, and with several Network processes behind one address each
counts its own share (docs/operations.md, "Dashboards").

A Node counts as online in a minute when one of its heartbeats arrived in that minute or in the
minutes before it that `offline_after` still covers: the registry's rule, at minute resolution.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_MINUTES = 60
# Refused routes are counted in one figure, not by the name asked for: the names come from
# anyone, and a count per unknown name would let them grow this table without bound.
REFUSED = "refused"


@dataclass
class _Minute:
    routes: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (node, name, version)
    refused: int = 0
    heartbeats: Counter[str] = field(default_factory=Counter)  # node id


class Activity:
    def __init__(self, *, offline_after: float, clock: Callable[[], float] = time.time) -> None:
        self.offline_after = offline_after
        self._clock = clock
        self._started = clock()
        self._minutes: dict[int, _Minute] = {}
        self._lock = threading.Lock()

    def _bucket(self) -> _Minute:
        minute = int(self._clock() // 60)
        bucket = self._minutes.get(minute)
        if bucket is None:
            bucket = self._minutes[minute] = _Minute()
            for old in [m for m in self._minutes if m <= minute - WINDOW_MINUTES]:
                del self._minutes[old]
        return bucket

    def routed(self, node_id: str, name: str, version: str) -> None:
        with self._lock:
            self._bucket().routes[(node_id, name, version)] += 1

    def route_refused(self) -> None:
        with self._lock:
            self._bucket().refused += 1

    def heartbeat(self, node_id: str) -> None:
        with self._lock:
            self._bucket().heartbeats[node_id] += 1

    def window(self) -> Window:
        """The last `WINDOW_MINUTES` minutes, oldest first, ending with the current one; only
        those since this process started (before that it counted nothing, which is not zero)."""
        clock = self._clock()
        now = int(clock // 60)
        minutes = range(max(now - WINDOW_MINUTES + 1, int(self._started // 60)), now + 1)
        with self._lock:
            buckets = [self._minutes.get(m, _Minute()) for m in minutes]
            return Window(
                offsets=[m - now for m in minutes],
                routes=[Counter(b.routes) for b in buckets],
                refused=[b.refused for b in buckets],
                heartbeats=[Counter(b.heartbeats) for b in buckets],
                online_span=max(1, math.ceil(self.offline_after / 60)),
                current_minute_seconds=clock - now * 60,
                counted_seconds=clock - self._started,
            )


@dataclass
class Window:
    """Per-minute figures: index i is `offsets[i]` minutes from now (0 = the current minute)."""

    offsets: list[int]
    routes: list[Counter[tuple[str, str, str]]]
    refused: list[int]
    heartbeats: list[Counter[str]]
    online_span: int  # minutes a heartbeat keeps its Node online (offline_after, rounded up)
    current_minute_seconds: float  # how far into the current minute the window ends
    counted_seconds: float  # since this process started counting

    def rate(self, counts: list[int], minutes: int = 5) -> float:
        """Events per minute over the last `minutes` buckets: the current one counts for the
        part of it that has passed, and a process that started later for its own time."""
        span = (minutes - 1) * 60 + self.current_minute_seconds
        span = max(1.0, min(span, self.counted_seconds))
        return sum(counts[-minutes:]) * 60 / span

    def nodes_online(self) -> list[int]:
        online = []
        for index in range(len(self.offsets)):
            recent = self.heartbeats[max(0, index - self.online_span + 1):index + 1]
            online.append(len(set().union(*recent)))
        return online

    def heartbeats_of(self, node_id: str) -> list[int]:
        return [minute[node_id] for minute in self.heartbeats]

    def routes_to_node(self, node_id: str) -> list[int]:
        return [sum(n for (node, _, _), n in minute.items() if node == node_id)
                for minute in self.routes]

    def routes_to_model(self, node_id: str, name: str, version: str) -> list[int]:
        return [minute[(node_id, name, version)] for minute in self.routes]

    def models(self) -> list[tuple[str, str, str]]:
        """Every (node, name, version) routed to in the window, busiest first."""
        totals: Counter[tuple[str, str, str]] = Counter()
        for minute in self.routes:
            totals.update(minute)
        return [key for key, _ in totals.most_common()]

    def nodes(self) -> list[str]:
        """Every Node heard from in the window, busiest first."""
        totals: Counter[str] = Counter()
        for minute in self.heartbeats:
            totals.update(minute)
        return [key for key, _ in totals.most_common()]

