"""The Node's application factory (Flask's tutorial pattern: build the app from a config)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from fedgrid_server.bodies import init_body_limit
from fedgrid_server.credentials import check_token_text
from fedgrid_server.errors import register_error_handlers

from .auth.admin import load_or_create_admin_token
from .browser import blueprint as browser_blueprint
from .config import NodeConfig, default_replica_id
from .cors import init_cors
from .cycles.cluster import Cluster
from .cycles.engine import CycleEngine
from .dashboard import init_app as init_dashboard
from .db.database import Database
from .metrics import blueprint as metrics_blueprint
from .model_centric import http_routes, speed_test  # noqa: F401  (speed_test adds routes)
from .model_centric.events import ModelCentricEvents
from .model_centric.ws_routes import init_websocket
from .network_membership import start_membership
from .node_info import blueprint as node_info_blueprint

log = logging.getLogger("fedgrid.node")


@dataclass
class NodeState:
    """Everything the routes need, kept in ``app.extensions["fedgrid"]``."""

    config: NodeConfig
    db: Database
    engine: CycleEngine
    events: ModelCentricEvents


def create_app(config: NodeConfig) -> Flask:
    config.check_cluster()  # before anything is created: a cluster on SQLite does not start
    app = Flask("fedgrid_node")
    app.config.update(
        SECRET_KEY=config.secret_key,
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        # Multipart plans and checkpoints are files, but allow big non-file parts as well.
        MAX_FORM_MEMORY_SIZE=config.max_body_bytes,
        # simple_websocket reads 4 KiB at a time by default: a 1 MiB diff was 256 reads, each
        # through wsproto, 1.6x HTTP's Node CPU per report; 64 KiB reads make it 1.2x
        # (apps/node/benchmarks/ws_report_cost.py). Kept under glibc's 128 KiB mmap threshold.
        SOCK_SERVER_OPTIONS={"max_message_size": config.max_body_bytes,
                             "ping_interval": config.ws_ping_interval, "receive_bytes": 65536},
    )
    if config.admin_token is None:
        config.admin_token, created = load_or_create_admin_token(config.data_dir)
        if created:
            # Printed once, on the console only (never logged): the operator must keep it.
            print(f"Generated admin token (stored in {config.data_dir / 'admin-token'}): "
                  f"{config.admin_token}", flush=True)
    else:  # given by --admin-token / GRID_ADMIN_TOKEN: refuse an empty or unusable one
        check_token_text(config.admin_token, "admin token (--admin-token, GRID_ADMIN_TOKEN)")

    db = Database(config.resolved_database_url())
    db.upgrade()
    # A replica's diffs go to the shared database; a single Node's to files in its data dir.
    engine = CycleEngine(db, diff_dir=None if config.cluster else config.data_dir / "diffs")
    if config.cluster:
        engine.cluster = Cluster(engine, config.resolved_database_url(),
                                 config.replica_id or default_replica_id())
    engine.start()
    events = ModelCentricEvents(db, engine, config.admin_token)
    app.extensions["fedgrid"] = NodeState(config=config, db=db, engine=engine, events=events)

    app.register_blueprint(http_routes.blueprint)
    app.register_blueprint(node_info_blueprint)
    app.register_blueprint(metrics_blueprint)
    app.register_blueprint(browser_blueprint)
    init_dashboard(app)  # the dashboard at / (dashboard/); after node_info: adds its OpenAPI paths
    init_websocket(app)
    register_error_handlers(app, name="Node", log=log)  # JSON errors (fedgrid_server.errors)
    init_cors(app, config.cors_origins)
    init_body_limit(app)  # chunked bodies over MAX_CONTENT_LENGTH: 413, not truncated
    start_membership(app)  # joins --network, if given, then heartbeats
    return app
