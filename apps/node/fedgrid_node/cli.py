"""`fedgrid-node` / `python -m fedgrid_node`: flags and environment compatible with PyGrid's Node."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="fedgrid-node", description="Run a Fedgrid Node (model-centric federated learning)."
    )
    parser.add_argument("--id", default=env.get("NODE_ID", "fedgrid-node"),
                        help="this Node's id (env NODE_ID)")
    parser.add_argument("--port", "-p", type=int, default=int(env.get("GRID_NODE_PORT", 5000)),
                        help="port to listen on (env GRID_NODE_PORT, default 5000)")
    parser.add_argument("--host", default=env.get("GRID_NODE_HOST", "0.0.0.0"),
                        help="interface to bind (env GRID_NODE_HOST, default 0.0.0.0)")
    parser.add_argument("--network", default=env.get("NETWORK"),
                        help="URL of the Fedgrid Network to join (env NETWORK)")
    parser.add_argument("--network-secret", default=env.get("NETWORK_SECRET"),
                        help="registration secret of the Network to join (env NETWORK_SECRET)")
    parser.add_argument("--address", default=env.get("ADDRESS"),
                        help="public URL of this Node, as the Network and devices reach it (env ADDRESS)")
    parser.add_argument("--start_local_db", action="store_true",
                        help="use an embedded SQLite file in the data directory even if DATABASE_URL is set")
    parser.add_argument("--num_replicas", type=int, default=None,
                        help="accepted for PyGrid compatibility; a Node runs as one process per database")
    parser.add_argument("--database-url", default=env.get("DATABASE_URL"),
                        help="SQLAlchemy URL, e.g. postgresql://user:pw@host/db (env DATABASE_URL)")
    parser.add_argument("--data-dir", default=env.get("FEDGRID_DATA_DIR"),
                        help="directory for the SQLite file and the admin token (default var/<id>)")
    parser.add_argument("--admin-token", default=env.get("GRID_ADMIN_TOKEN"),
                        help="admin bearer token (env GRID_ADMIN_TOKEN; generated and printed once if absent)")
    parser.add_argument("--max-body-mb", type=float, default=float(env.get("FEDGRID_MAX_BODY_MB", 64)),
                        help="largest request body or WebSocket message accepted, in MiB (default 64)")
    parser.add_argument("--cors-origins", default=env.get("FEDGRID_CORS_ORIGINS", "*"),
                        help="origins whose pages may call the API: '*' (default), 'none', or a "
                        "comma-separated list (env FEDGRID_CORS_ORIGINS)")
    parser.add_argument("--log-level", default=env.get("FEDGRID_LOG_LEVEL", "INFO"))
    return parser


def main(argv: list[str] | None = None) -> None:
    # Patch the standard library before Flask, SQLAlchemy, pg8000 or requests import sockets, so
    # that their network waits yield to other requests instead of blocking the whole Node.
    from gevent import monkey

    monkey.patch_all()

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic announces every plugin at INFO on each start; only its warnings matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from .app import create_app
    from .config import NodeConfig
    from .cors import parse_origins
    from .server import serve

    config = NodeConfig(
        node_id=args.id,
        host=args.host,
        port=args.port,
        address=args.address,
        network_url=args.network,
        network_secret=args.network_secret,
        database_url=None if args.start_local_db else args.database_url,
        data_dir=Path(args.data_dir or Path("var") / args.id),
        admin_token=args.admin_token or None,
        num_replicas=args.num_replicas,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        cors_origins=parse_origins(args.cors_origins),
    )
    if os.environ.get("SECRET_KEY"):
        config.secret_key = os.environ["SECRET_KEY"]
    app = create_app(config)
    state = app.extensions["fedgrid"]

    def on_stop():
        from .network_membership import stop_membership

        stop_membership(app)
        state.engine.stop()
        state.db.dispose()

    serve(app, config.host, config.port, on_stop=on_stop)


if __name__ == "__main__":
    main()
