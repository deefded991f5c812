"""What the `fedgrid-node` and `fedgrid-network` command lines share.

PyGrid-compatible flags and environment variables (--port/--host from GRID_<APP>_PORT/_HOST,
--start_local_db, DATABASE_URL, GRID_ADMIN_TOKEN, SECRET_KEY), gevent's patching and logging.
Imports only the standard library at module level: `start()` must patch it before anything that
opens sockets (Flask, SQLAlchemy, pg8000, requests) is imported.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def add_listen_arguments(parser: argparse.ArgumentParser, *, env_prefix: str,
                         default_port: int) -> None:
    """--port and --host, defaulting to ``<env_prefix>_PORT`` / ``<env_prefix>_HOST``."""
    env = os.environ
    parser.add_argument("--port", "-p", type=int,
                        default=int(env.get(f"{env_prefix}_PORT", default_port)),
                        help=f"port to listen on (env {env_prefix}_PORT, default {default_port})")
    parser.add_argument("--host", default=env.get(f"{env_prefix}_HOST", "0.0.0.0"),
                        help=f"interface to bind (env {env_prefix}_HOST, default 0.0.0.0)")


def add_timeout_arguments(parser: argparse.ArgumentParser) -> None:
    """--idle-timeout and --header-timeout (env FEDGRID_IDLE_TIMEOUT / FEDGRID_HEADER_TIMEOUT)."""
    env = os.environ
    parser.add_argument("--idle-timeout", type=float,
                        default=float(env.get("FEDGRID_IDLE_TIMEOUT", 60)),
                        help="seconds a connection may stay silent (no request, or a read or "
                        "write that makes no progress) before it is closed (env "
                        "FEDGRID_IDLE_TIMEOUT, default 60)")
    parser.add_argument("--header-timeout", type=float,
                        default=float(env.get("FEDGRID_HEADER_TIMEOUT", 20)),
                        help="seconds for a request's line and headers to arrive once they have "
                        "begun; slower clients get 408 (env FEDGRID_HEADER_TIMEOUT, default 20)")


def check_timeouts(args: argparse.Namespace) -> None:
    for flag in ("idle_timeout", "header_timeout"):
        if not 0 < getattr(args, flag) <= 86400:
            raise SystemExit(f"--{flag.replace('_', '-')} must be between 0 and 86400 seconds")


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    """--start_local_db and --database-url (env DATABASE_URL)."""
    parser.add_argument("--start_local_db", action="store_true",
                        help="use an embedded SQLite file in the data directory even if DATABASE_URL is set")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="SQLAlchemy URL, e.g. postgresql://user:pw@host/db (env DATABASE_URL)")


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default=os.environ.get("FEDGRID_LOG_LEVEL", "INFO"))


def database_url(args: argparse.Namespace) -> str | None:
    """The DATABASE_URL to use: none (embedded SQLite) when --start_local_db was given."""
    return None if args.start_local_db else args.database_url


def start(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Patch the standard library for gevent, parse the command line and set up logging."""
    # Before Flask, SQLAlchemy, pg8000 or requests import sockets, so that their network waits
    # yield to other requests instead of blocking the whole server.
    from gevent import monkey

    monkey.patch_all()

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic announces every plugin at INFO on each start; only its warnings matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return args


def apply_secret_key(config) -> None:
    """SECRET_KEY from the environment, if set, signs the app's cookies (else a random key)."""
    if os.environ.get("SECRET_KEY"):
        config.secret_key = os.environ["SECRET_KEY"]


def create_app_or_exit(prog: str, create_app, config):
    """``create_app(config)``, or exit with one line when it cannot start: an unusable secret or
    token file, or a database it cannot reach or log in to (named without its password).

    A wrong password used to end the start in a 143-line traceback through SQLAlchemy and the
    driver; the person needs the URL they gave and the server's reason.
    """
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    from .credentials import SecretFileError

    try:
        return create_app(config)
    except SecretFileError as exc:
        raise SystemExit(f"{prog}: {exc}") from None
    except DBAPIError as exc:
        url = config.resolved_database_url()
        raise SystemExit(f"{prog}: cannot use the database {redacted_url(url)}: "
                         f"{database_failure(exc)}") from None
    except (ArgumentError, NoSuchModuleError, ModuleNotFoundError) as exc:
        if isinstance(exc, ModuleNotFoundError) and not _is_database_driver(exc):
            raise
        url = config.resolved_database_url()
        raise SystemExit(f"{prog}: cannot use the database {redacted_url(url)}: not a SQLite or "
                         f"PostgreSQL URL ({' '.join(str(exc).split())}); e.g. "
                         "postgresql://user:password@host/database") from None


def _is_database_driver(exc: ModuleNotFoundError) -> bool:
    """A driver SQLAlchemy tried to import for the URL's scheme (mysql:// wants MySQLdb), rather
    than a module of ours that is missing."""
    import traceback

    return any("sqlalchemy/dialects" in frame.filename.replace("\\", "/")
               for frame in traceback.extract_tb(exc.__traceback__))


def redacted_url(url: str) -> str:
    """The database URL as it may be printed: the password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show none of it rather than a secret
        return "(the configured DATABASE_URL)"


def database_failure(exc) -> str:
    """The driver's own reason, on one line: PostgreSQL's message field when the server sent one."""
    original = getattr(exc, "orig", None) or exc
    detail = original.args[0] if original.args else original
    if isinstance(detail, dict) and "M" in detail:  # pg8000: the server's error fields
        detail = detail["M"]
    elif getattr(getattr(original, "diag", None), "message_primary", None):  # psycopg
        detail = original.diag.message_primary
    elif "FATAL:" in str(detail):
        # psycopg refused at connect: "connection failed: connection to server at ... failed:
        # FATAL:  password authentication failed ..."; the reason is the server's part.
        detail = str(detail).rsplit("FATAL:", 1)[1]
    return " ".join(str(detail).split())
