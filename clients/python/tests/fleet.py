"""A fleet of SDK devices, each in `participate()` on a thread of its own (test support)."""

from __future__ import annotations

import threading
import time

import numpy as np

from fedgrid import Client


class Fleet:
    """``devices`` devices on shards of ``data``; half over HTTP (``url``), half over WebSocket
    (``ws_url``), so the Node holds long-polls on both. `start`, then `join`; `stop` in a
    ``finally``."""

    def __init__(self, name: str, data, devices: int, *, url: str, ws_url: str) -> None:
        features, labels = data
        order = np.random.default_rng(0).permutation(len(features))
        self.shards = [(features[part], labels[part]) for part in np.array_split(order, devices)]
        self.reports: list[list[dict] | None] = [None] * devices
        self.failures: list[tuple[int, BaseException]] = []
        self.clients = [Client(url if i % 2 == 0 else ws_url) for i in range(devices)]
        self.jobs = [client.new_job(name) for client in self.clients]
        self.threads = [threading.Thread(target=self._device, args=(i,), name=f"device-{i}",
                                         daemon=True) for i in range(devices)]

    def _device(self, index: int) -> None:
        try:
            self.reports[index] = self.jobs[index].participate(self.shards[index])
        except BaseException as exc:  # noqa: BLE001 (the test reads `failures`)
            self.failures.append((index, exc))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self, seconds: float) -> list[str]:
        """Wait up to ``seconds`` in all; the names of the devices still in participate()."""
        deadline = time.monotonic() + seconds
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return [thread.name for thread in self.threads if thread.is_alive()]

    def made(self) -> list[dict]:
        """Every report the devices were told was stored (participate()'s lists)."""
        return [report for device_reports in self.reports for report in device_reports or ()]

    def stop(self) -> None:
        for job in self.jobs:
            job.stop()
        for client in self.clients:
            client.close()
