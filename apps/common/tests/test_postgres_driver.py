"""The default PostgreSQL driver (psycopg) keeps the gevent hub free while a query runs.

A server that waits for one slow query must go on answering everyone else: with gevent's
monkey-patching, psycopg waits for the server through the patched selectors and yields. The
check runs in a fresh interpreter, patched first as the Node and the Network are (cli.py), and
compares a slow `pg_sleep` with a quick query and a ticking greenlet started after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.support.databases import database_backends

PROBE = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, os, sys, time
    import gevent
    from sqlalchemy import create_engine, text
    from fedgrid_server.config import normalize_database_url

    url = normalize_database_url(sys.argv[1])
    engine = create_engine(url, pool_size=2, max_overflow=0)
    for _ in range(2):  # two pooled connections, so the quick query needs no connect
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    moments = {}
    started = time.monotonic()

    def slow():
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(1)"))
        moments["slow_done"] = time.monotonic() - started

    def quick():
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        moments["quick_done"] = time.monotonic() - started

    ticks = []

    def ticker():
        while "slow_done" not in moments:
            gevent.sleep(0.01)
            ticks.append(time.monotonic() - started)

    greenlets = [gevent.spawn(slow)]
    gevent.sleep(0.1)  # the slow query is on the server now
    greenlets += [gevent.spawn(quick), gevent.spawn(ticker)]
    gevent.joinall(greenlets, raise_error=True)
    print(json.dumps({"driver": engine.dialect.driver, "ticks_during_slow":
                      sum(1 for t in ticks if t < moments["slow_done"]), **moments}))
""")


@pytest.mark.parametrize("backend", [b for b in database_backends() if b == "postgresql"])
def test_a_slow_query_leaves_the_hub_free(backend):
    url = os.environ["FEDGRID_TEST_POSTGRES_URL"]
    finished = subprocess.run([sys.executable, "-c", PROBE, url], capture_output=True, text=True,
                              timeout=60, env=dict(os.environ))
    assert finished.returncode == 0, finished.stderr
    probe = json.loads(finished.stdout)
    assert probe["driver"] == "psycopg"  # the default for a plain postgresql:// URL
    assert probe["slow_done"] >= 1.0
    # Answered while the slow query still ran, and the hub kept ticking throughout (a blocked
    # hub would tick only after it: none during the second).
    assert probe["quick_done"] < probe["slow_done"] - 0.5
    assert probe["ticks_during_slow"] >= 30
