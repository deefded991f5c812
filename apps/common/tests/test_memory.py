"""The allocator settings: large buffers freed and allocated again stop faulting pages in."""

from __future__ import annotations

import os
import subprocess
import sys

# A report's life, 100 times, as the Node lives it: a body of a megabyte read on the main
# thread, a buffer of that size made on a worker thread (the Node checks, folds and writes diffs
# on gevent's thread pool) and handed back, a copy, every page touched, all freed once answered.
# Prints the minor page faults it took: with glibc's defaults the memory freed is given back to
# the system each time, so each report faults its buffers in again.
CHURN = """
import resource, sys
from concurrent.futures import ThreadPoolExecutor
from fedgrid_server.memory import tune_malloc
print(tune_malloc() if sys.argv[1] == "tuned" else None)
pool = ThreadPoolExecutor(2)

def touched(size):
    buffer = bytearray(size)
    buffer[::4096] = b"x" * len(buffer[::4096])
    return buffer

before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    body = touched(1 << 20)
    made = pool.submit(lambda: bytes(touched(1 << 20))).result()
    copy = bytes(body)
    del body, made, copy
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def churn(mode: str, **env: str) -> tuple[str, int]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    out = subprocess.run([sys.executable, "-c", CHURN, mode], env=environ, check=True,
                         capture_output=True, text=True).stdout.split()
    return out[0], int(out[1])


def test_tuned_large_buffers_are_reused_instead_of_faulted_in_again():
    applied, tuned = churn("tuned")
    _, default = churn("default")
    assert applied == "True"
    assert default > 100 * 100  # about 256 per buffer of 1 MiB with the defaults
    assert tuned < default / 10


def test_an_operators_own_malloc_settings_win():
    applied, _ = churn("tuned", MALLOC_ARENA_MAX_="2")
    assert applied == "False"
