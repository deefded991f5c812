"""The Network's application factory."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from fedgrid_server.bodies import init_body_limit
from fedgrid_server.credentials import check_token_text
from fedgrid_server.errors import register_error_handlers

from .activity import Activity
from .config import NetworkConfig
from .credentials import load_or_create_secret
from .dashboard import blueprint as dashboard_blueprint
from .db.database import Database
from .registry import Registry
from .routes import blueprint as api_blueprint

log = logging.getLogger("fedgrid.network")

MAX_BODY_BYTES = 4 * 1024 * 1024  # heartbeats are small; nothing here takes uploads


@dataclass
class NetworkState:
    """Everything the routes need, kept in ``app.extensions["fedgrid_network"]``."""

    config: NetworkConfig
    db: Database
    registry: Registry
    activity: Activity  # per-minute counts for the dashboard (in memory, this process's)


def create_app(config: NetworkConfig) -> Flask:
    app = Flask("fedgrid_network", static_folder=None)
    app.config.update(SECRET_KEY=config.secret_key, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    # Secrets not given are generated once, kept in the data directory (mode 0600, written
    # atomically) and printed once on the console (never logged), like the Node's admin token.
    # A stored file that is empty or whitespace-only is replaced (with a warning in the log);
    # an unusable given or stored value stops the Network (SecretFileError).
    for attribute, filename, what in (
        ("admin_token", "admin-token", "admin token"),
        ("registration_secret", "network-secret", "registration secret (NETWORK_SECRET for Nodes)"),
    ):
        if not getattr(config, attribute):
            value, created = load_or_create_secret(config.data_dir / filename, what=what, log=log)
            setattr(config, attribute, value)
            if created:
                print(f"Generated {what} (stored in {config.data_dir / filename}): {value}",
                      flush=True)
        else:
            check_token_text(getattr(config, attribute), what)

    db = Database(config.resolved_database_url())
    db.upgrade()
    registry = Registry(db, heartbeat_interval=config.heartbeat_interval,
                        offline_after=config.offline_after_seconds)
    activity = Activity(offline_after=config.offline_after_seconds)
    app.extensions["fedgrid_network"] = NetworkState(config=config, db=db, registry=registry,
                                                     activity=activity)
    app.register_blueprint(api_blueprint)
    app.register_blueprint(dashboard_blueprint)
    register_error_handlers(app, name="Network", log=log)  # JSON errors (fedgrid_server.errors)
    init_body_limit(app)  # chunked bodies over MAX_CONTENT_LENGTH: 413, not truncated
    return app
