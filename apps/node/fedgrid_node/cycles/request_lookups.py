"""What every cycle-request looks up and what never changes once written, kept in memory.

A cycle-request names its worker and its model. The worker's process never changes (a worker is
issued for one process and lives until that process is deleted); which process a model name (and
version) means changes only when a process is hosted or deleted. Reading both from the database
was half of a rejection's ORM round trips (the other two, under the cycle's lock, are now
answered from the open cycle's memory, engine.py `_place`), so a single Node keeps them here:

- worker id -> (process id, the speeds last stored on its row), bounded (least recently used out),
  from `authenticate` on (no speeds yet): a request whose speeds are the stored ones writes
  nothing; one with new speeds takes the database path, which stores them;
- (model name, version or None) -> the process it means, with its parsed server_config;
- process id -> the final answer of a finished or stopped process (nothing but a delete changes
  it).

Invalidation: the engine calls `hosted` after a hosting committed (a new version takes over the
requests that name no version) and `deleted` after a delete committed (its workers are gone and
its id may be given out again). A lookup that read the database before such a change must not
store what it read after it: `generation` is taken before reading and `remember_*` stores only if
no change came in between (a read yields to other greenlets on PostgreSQL).

Replicas (``--cluster``) do not use this: another replica may host or delete at any moment, and
nothing tells this one in time; their requests read the database as before.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .server_config import ServerConfig

# Workers kept; one entry is ~200 bytes, so this bounds the cache near 20 MiB. A worker pushed out
# costs one database read at its next request.
WORKERS_KEPT = 100_000

# ping (ms), download and upload (Mbit/s), as the worker's row stores them
StoredSpeeds = tuple[float | None, float | None, float | None]


@dataclass(frozen=True)
class KnownProcess:
    process_id: int
    name: str
    version: str
    config: ServerConfig


@dataclass(frozen=True)
class HostedProcess:
    """What an accepted cycle-request tells about its process; fixed once hosted, so the engine
    caches it by process id (replicas too: a process id is never given to another process while
    this one exists, and the delete that frees it clears the cache)."""

    process_id: int
    name: str
    version: str
    model_id: int
    client_config: dict[str, Any]


class RequestLookups:
    def __init__(self, workers_kept: int = WORKERS_KEPT) -> None:
        self.workers_kept = workers_kept
        self.generation = 0  # moves at every host and delete
        self._workers: OrderedDict[str, tuple[int, StoredSpeeds]] = OrderedDict()
        self._processes: dict[tuple[str, str | None], KnownProcess] = {}
        self._ended: dict[int, dict[str, Any]] = {}

    # ----------------------------------------------------------------------------- reads

    def worker(self, worker_id: str) -> tuple[int, StoredSpeeds] | None:
        known = self._workers.get(worker_id)
        if known is not None:
            self._workers.move_to_end(worker_id)
        return known

    def process(self, name: str, version: str | None) -> KnownProcess | None:
        return self._processes.get((name, version))

    def ended(self, process_id: int) -> dict[str, Any] | None:
        return self._ended.get(process_id)

    # ----------------------------------------------------------------------------- writes

    def remember_worker(self, generation: int, worker_id: str, process_id: int,
                        speeds: StoredSpeeds) -> None:
        if generation != self.generation:
            return
        self._workers[worker_id] = (process_id, speeds)
        self._workers.move_to_end(worker_id)
        while len(self._workers) > self.workers_kept:
            self._workers.popitem(last=False)

    def remember_process(self, generation: int, name: str, version: str | None,
                         known: KnownProcess) -> None:
        if generation == self.generation:
            self._processes[(name, version)] = known

    def remember_ended(self, generation: int, process_id: int, answer: dict[str, Any]) -> None:
        if generation == self.generation:
            self._ended[process_id] = answer

    # ----------------------------------------------------------------------------- changes

    def hosted(self) -> None:
        """A process was hosted: which process a name means may have changed."""
        self.generation += 1
        self._processes.clear()

    def deleted(self, process_id: int) -> None:
        """A process was deleted: its workers, its name and its id mean nothing any more."""
        self.generation += 1
        self._processes.clear()
        self._ended.pop(process_id, None)
        for worker_id in [w for w, (p, _) in self._workers.items() if p == process_id]:
            del self._workers[worker_id]
