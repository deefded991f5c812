"""The neighbour graph over a secure cohort (Bell et al. 2020): k-regular, drawn by the Node.

Devices are placed on a ring in a random order; each one's neighbours are the k/2 devices on
either side (a circulant graph), or everyone else when k = n - 1. A device masks its input with
its neighbours only and gives them its shares, so each device does O(k) = O(log n) work.
"""

from __future__ import annotations

import random


def neighbour_graph(indices: list[int], degree: int, rng: random.Random) -> dict[int, list[int]]:
    n = len(indices)
    if not 1 <= degree <= n - 1:
        raise ValueError("the degree is between 1 and the cohort size - 1")
    if degree == n - 1:
        return {i: sorted(j for j in indices if j != i) for i in indices}
    if degree % 2:
        raise ValueError("a sparse neighbour graph has an even degree")
    ring = list(indices)
    rng.shuffle(ring)
    graph = {}
    for position, i in enumerate(ring):
        graph[i] = sorted({ring[(position + step) % n]
                           for offset in range(1, degree // 2 + 1)
                           for step in (offset, -offset)})
    return graph
