"""`fedgrid-network` / `python -m fedgrid_network`: flags and environment compatible with PyGrid's
Network (--port, --host, --start_local_db, GRID_NETWORK_PORT, GRID_NETWORK_HOST, DATABASE_URL,
SECRET_KEY), plus the registration secret shared with the Nodes (NETWORK_SECRET)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fedgrid_server import cli as server_cli


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="fedgrid-network",
        description="Run a Fedgrid Network: a registry of Nodes that routes devices to them.",
    )
    server_cli.add_listen_arguments(parser, env_prefix="GRID_NETWORK", default_port=7000)
    server_cli.add_timeout_arguments(parser)  # --idle-timeout, --header-timeout
    server_cli.add_database_arguments(parser)  # --start_local_db, --database-url
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
    server_cli.add_log_level_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    # Patches the standard library for gevent before Flask, SQLAlchemy or pg8000 import sockets.
    args = server_cli.start(build_parser(), argv)
    server_cli.check_timeouts(args)
    if args.heartbeat_interval <= 0:
        raise SystemExit("--heartbeat-interval must be positive")
    from fedgrid_server.server import serve

    from .app import create_app
    from .config import NetworkConfig

    config = NetworkConfig(
        host=args.host,
        port=args.port,
        database_url=server_cli.database_url(args),
        data_dir=Path(args.data_dir),
        admin_token=args.admin_token or None,
        registration_secret=args.network_secret or None,
        heartbeat_interval=args.heartbeat_interval,
        offline_after=args.offline_after,
    )
    server_cli.apply_secret_key(config)
    app = server_cli.create_app_or_exit("fedgrid-network", create_app, config)
    serve(app, config.host, config.port, name="Network",
          on_stop=app.extensions["fedgrid_network"].db.dispose,
          idle_timeout=args.idle_timeout, header_timeout=args.header_timeout)


if __name__ == "__main__":
    main()
