"""Does the PostgreSQL driver yield to other requests under gevent? (docs/architecture.md, "Why
gevent", rests on it.)

Runs CONCURRENT greenlets, each doing one `SELECT pg_sleep(0.5)` through SQLAlchemy with the
driver the Node uses (pg8000, pure Python, on monkey-patched sockets). If the driver blocked the
hub, the queries would run one after another (CONCURRENT x 0.5 s); cooperative, they overlap
(~0.5 s in all). A ticker greenlet counts how often the hub got to run meanwhile.

    make postgres && .venv/bin/python apps/node/benchmarks/postgres_under_gevent.py
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from fedgrid_server.config import normalize_database_url  # noqa: E402

CONCURRENT = 10
SLEEP = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", default=None,
                        help="psycopg or pg8000; default: the one a plain postgresql:// URL gets")
    args = parser.parse_args()
    url = normalize_database_url(
        os.environ.get("FEDGRID_TEST_POSTGRES_URL", "postgresql://fedgrid:fedgrid@127.0.0.1:5432/postgres")
    )
    if args.driver:
        url = "postgresql+" + args.driver + "://" + url.split("://", 1)[1]
    engine = create_engine(url, pool_size=CONCURRENT, max_overflow=0)
    with engine.connect() as connection:  # warm the pool's first connection
        connection.execute(text("SELECT 1"))
    ticks = 0

    def ticker():
        nonlocal ticks
        while True:
            gevent.sleep(0.01)
            ticks += 1

    def query():
        with engine.connect() as connection:
            connection.execute(text(f"SELECT pg_sleep({SLEEP})"))

    tick = gevent.spawn(ticker)
    start = time.perf_counter()
    gevent.joinall([gevent.spawn(query) for _ in range(CONCURRENT)], raise_error=True)
    elapsed = time.perf_counter() - start
    tick.kill()
    serial = CONCURRENT * SLEEP
    print(f"driver: {engine.dialect.driver}; {CONCURRENT} concurrent pg_sleep({SLEEP}) queries")
    print(f"wall time {elapsed:.2f} s vs {serial:.1f} s if the driver blocked the hub "
          f"({serial / elapsed:.1f}x overlap); hub ticks meanwhile: {ticks} "
          f"(~{elapsed / 0.01:.0f} if never blocked)")


if __name__ == "__main__":
    main()
