"""`fedgrid-network` / `python -m fedgrid_network`: flags and environment compatible with PyGrid's
Network (--port, --host, --start_local_db, GRID_NETWORK_PORT, GRID_NETWORK_HOST, DATABASE_URL,
SECRET_KEY), plus the registration secret shared with the Nodes (NETWORK_SECRET)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="fedgrid-network",
        description="Run a Fedgrid Network: a registry of Nodes that routes devices to them.",
    )
    parser.add_argument("--port", "-p", type=int, default=int(env.get("GRID_NETWORK_PORT", 7000)),
                        help="port to listen on (env GRID_NETWORK_PORT, default 7000)")
    parser.add_argument("--host", default=env.get("GRID_NETWORK_HOST", "0.0.0.0"),
                        help="interface to bind (env GRID_NETWORK_HOST, default 0.0.0.0)")
    parser.add_argument("--start_local_db", action="store_true",
                        help="use an embedded SQLite file in the data directory even if DATABASE_URL is set")
    parser.add_argument("--database-url", default=env.get("DATABASE_URL"),
                        help="SQLAlchemy URL, e.g. postgresql://user:pw@host/db (env DATABASE_URL)")
    parser.add_argument("--data-dir", default=env.get("FEDGRID_DATA_DIR", "var/network"),
                        help="directory for the SQLite file and generated secrets (default var/network)")
    parser.add_argument("--network-secret", default=env.get("NETWORK_SECRET"),
                        help="registration secret Nodes must present to join (env NETWORK_SECRET; "
                             "generated and printed once if absent)")
    parser.add_argument("--admin-token", default=env.get("GRID_ADMIN_TOKEN"),
                        help="admin bearer token for removing Nodes (env GRID_ADMIN_TOKEN; "
                             "generated and printed once if absent)")
    parser.add_argument("--heartbeat-interval", type=float,
                        default=float(env.get("FEDGRID_HEARTBEAT_INTERVAL", 10)),
                        help="seconds between a Node's heartbeats, told to Nodes when they join "
                             "(default 10)")
    parser.add_argument("--offline-after", type=float,
                        default=float(env.get("FEDGRID_OFFLINE_AFTER", 0)) or None,
                        help="seconds without a heartbeat before a Node is offline "
                             "(default: three heartbeat intervals)")
    parser.add_argument("--log-level", default=env.get("FEDGRID_LOG_LEVEL", "INFO"))
    return parser


def main(argv: list[str] | None = None) -> None:
    # Patch the standard library before Flask, SQLAlchemy or pg8000 import sockets.
    from gevent import monkey

    monkey.patch_all()

    args = build_parser().parse_args(argv)
    if args.heartbeat_interval <= 0:
        raise SystemExit("--heartbeat-interval must be positive")
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from .app import create_app
    from .config import NetworkConfig
    from .server import serve

    config = NetworkConfig(
        host=args.host,
        port=args.port,
        database_url=None if args.start_local_db else args.database_url,
        data_dir=Path(args.data_dir),
        admin_token=args.admin_token or None,
        registration_secret=args.network_secret or None,
        heartbeat_interval=args.heartbeat_interval,
        offline_after=args.offline_after,
    )
    if os.environ.get("SECRET_KEY"):
        config.secret_key = os.environ["SECRET_KEY"]
    app = create_app(config)
    serve(app, config.host, config.port, on_stop=app.extensions["fedgrid_network"].db.dispose)


if __name__ == "__main__":
    main()
