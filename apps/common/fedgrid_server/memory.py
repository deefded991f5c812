"""glibc's allocator, tuned for a server that handles bodies of megabytes.

A 1 MiB report is read, unmasked (WebSocket), sliced, checked and folded: several buffers of
about its size per request, each freed when the answer is sent. With glibc's defaults each new
one is a fresh `mmap`, or heap the allocator just returned to the system (its trim threshold
follows the largest recent `mmap`, and the top of the heap is given back past it): every page of
every buffer is faulted in and zeroed again, request after request. Measured on the Node with
apps/node/benchmarks/ws_report_cost.py: 2.5 ms of Node CPU per 1 MiB report over HTTP and 4.1 ms
over WebSocket with the defaults, 1.8 and 2.5 ms with these settings, which keep up to
`MMAP_THRESHOLD` per allocation on the heap, ask for `TOP_PAD` more when the heap grows, and give
memory back only past `TRIM_THRESHOLD` free at its top. The price is resident memory kept for
reuse: up to about `TRIM_THRESHOLD` + `TOP_PAD` above what is in use, whatever the load.

An operator's own `MALLOC_*_` environment variables (glibc's tunables) win: then nothing is set
here. Other C libraries (musl) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger("fedgrid.server.memory")

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 64 * 1024 * 1024
TRIM_THRESHOLD = 128 * 1024 * 1024
TOP_PAD = 64 * 1024 * 1024


def tune_malloc() -> bool:
    """Apply the settings above; False (and nothing changed) where they do not apply."""
    if any(name.startswith("MALLOC_") and name.endswith("_") for name in os.environ):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    gnu_version = getattr(libc, "gnu_get_libc_version", None)
    if mallopt is None or gnu_version is None:  # not glibc
        return False
    applied = all(mallopt(parameter, value) == 1 for parameter, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD)))
    if not applied:
        log.warning("glibc refused the allocator settings; keeping its defaults")
    return applied
