"""`fedgrid-node` / `python -m fedgrid_node`: flags and environment compatible with PyGrid's Node."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import re
from pathlib import Path

from fedgrid_server import cli as server_cli

from .isolation import ISOLATION_ENV, parse_switch


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="fedgrid-node", description="Run a Fedgrid Node (model-centric federated learning)."
    )
    parser.add_argument("--id", default=env.get("NODE_ID", "fedgrid-node"),
                        help="this Node's id (env NODE_ID)")
    server_cli.add_listen_arguments(parser, env_prefix="GRID_NODE", default_port=5000)
    server_cli.add_timeout_arguments(parser)  # --idle-timeout, --header-timeout
    parser.add_argument("--network", default=env.get("NETWORK"),
                        help="URL of the Fedgrid Network to join (env NETWORK)")
    parser.add_argument("--network-secret", default=env.get("NETWORK_SECRET"),
                        help="registration secret of the Network to join (env NETWORK_SECRET)")
    parser.add_argument("--address", default=env.get("ADDRESS"),
                        help="public URL of this Node, as the Network and devices reach it (env ADDRESS)")
    server_cli.add_database_arguments(parser)  # --start_local_db, --database-url
    parser.add_argument("--cluster", action="store_true",
                        default=env.get("FEDGRID_CLUSTER", "").lower() in ("1", "true", "yes"),
                        help="run as one of several replicas sharing one PostgreSQL database and "
                        "serving the same models as one fleet (env FEDGRID_CLUSTER=1); the "
                        "replicas share --id, --address and --admin-token")
    parser.add_argument("--replica-id", default=env.get("FEDGRID_REPLICA_ID"),
                        help="this replica's name in logs and in the Network (env "
                        "FEDGRID_REPLICA_ID; default <hostname>-<pid>)")
    parser.add_argument("--num_replicas", type=int, default=None,
                        help="accepted for PyGrid compatibility; replicas are separate processes "
                        "started with --cluster")
    parser.add_argument("--data-dir", default=env.get("FEDGRID_DATA_DIR"),
                        help="directory for the SQLite file and the admin token (default var/<id>)")
    parser.add_argument("--admin-token", default=env.get("GRID_ADMIN_TOKEN"),
                        help="admin bearer token (env GRID_ADMIN_TOKEN; generated and printed once if absent)")
    parser.add_argument("--max-body-mb", type=float, default=float(env.get("FEDGRID_MAX_BODY_MB", 64)),
                        help="largest request body or WebSocket message accepted, in MiB (default 64)")
    parser.add_argument("--ws-ping-interval", type=float,
                        default=float(env.get("FEDGRID_WS_PING_INTERVAL", 25)),
                        help="seconds between pings on a WebSocket; one not answered by the next "
                        "ping closes it with 1008 (env FEDGRID_WS_PING_INTERVAL, default 25; "
                        "below --idle-timeout)")
    parser.add_argument("--cors-origins", default=env.get("FEDGRID_CORS_ORIGINS", "*"),
                        help="origins whose pages may call the API: '*' (default), 'none', or a "
                        "comma-separated list (env FEDGRID_CORS_ORIGINS)")
    parser.add_argument("--cross-origin-isolation", type=parse_switch, metavar="on|off",
                        default=env.get(ISOLATION_ENV, "on"),
                        help="serve the browser-device pages with COOP/COEP so the JavaScript SDK "
                        "may train on several threads; off if they embed third-party content "
                        f"(env {ISOLATION_ENV}, default on)")
    server_cli.add_log_level_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    # Patches the standard library for gevent before Flask, SQLAlchemy, pg8000 or requests import
    # sockets, so that their network waits yield to other requests instead of blocking the Node.
    args = server_cli.start(build_parser(), argv)
    server_cli.check_timeouts(args)
    if not 0 < args.ws_ping_interval < args.idle_timeout:
        # A quiet WebSocket is kept alive by the pings: at or past the idle timeout it would be
        # cut as idle before its first ping.
        raise SystemExit("--ws-ping-interval must be above 0 and below --idle-timeout "
                         f"({args.idle_timeout:g} s)")
    database_url = server_cli.database_url(args)
    if args.cluster:
        check_cluster_settings(database_url, args.admin_token)
    from fedgrid_protocol.network import REPLICA_ID_PATTERN
    from fedgrid_server.memory import tune_malloc
    from fedgrid_server.server import serve

    from .app import create_app
    from .config import ClusterConfigError, NodeConfig, default_replica_id
    from .cors import parse_origins

    tune_malloc()  # before the first large buffer: reports are megabytes (fedgrid_server/memory.py)
    if args.replica_id is not None and not re.fullmatch(REPLICA_ID_PATTERN, args.replica_id):
        raise SystemExit("fedgrid-node: --replica-id must be 1-128 letters, digits, '.', '_' or "
                         "'-', starting with a letter or digit")

    config = NodeConfig(
        node_id=args.id,
        host=args.host,
        port=args.port,
        address=args.address,
        network_url=args.network,
        network_secret=args.network_secret,
        database_url=database_url,
        data_dir=Path(args.data_dir or Path("var") / args.id),
        admin_token=args.admin_token or None,
        num_replicas=args.num_replicas,
        cluster=args.cluster,
        replica_id=(args.replica_id or default_replica_id()) if args.cluster else None,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        ws_ping_interval=args.ws_ping_interval,
        cors_origins=parse_origins(args.cors_origins),
        cross_origin_isolation=args.cross_origin_isolation,
    )
    server_cli.apply_secret_key(config)
    if config.cluster and not os.environ.get("SECRET_KEY"):
        # A dashboard login on one replica must hold on the others behind the load balancer:
        # replicas share the admin token, so they derive the same cookie-signing key from it.
        config.secret_key = hmac.new(config.admin_token.encode(), b"fedgrid dashboard sessions",
                                     hashlib.sha256).hexdigest()
    try:
        app = server_cli.create_app_or_exit("fedgrid-node", create_app, config)
    except ClusterConfigError as exc:
        raise SystemExit(f"fedgrid-node: {exc}") from None
    state = app.extensions["fedgrid"]

    def on_stop():
        from .network_membership import stop_membership

        stop_membership(app)
        state.engine.stop()
        state.db.dispose()

    serve(app, config.host, config.port, name="Node", on_stop=on_stop,
          idle_timeout=args.idle_timeout, header_timeout=args.header_timeout)


def check_cluster_settings(database_url: str | None, admin_token: str | None) -> None:
    """Replicas share their state through PostgreSQL and must agree on the admin token (each
    would otherwise generate its own into its own data directory)."""
    if not (database_url or "").startswith("postgresql"):
        raise SystemExit("fedgrid-node: --cluster needs PostgreSQL: replicas share one database")
    if not admin_token:
        raise SystemExit("fedgrid-node: --cluster needs the admin token given to every replica "
                         "(--admin-token or GRID_ADMIN_TOKEN)")


if __name__ == "__main__":
    main()
