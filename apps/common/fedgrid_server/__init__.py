"""Server plumbing the Fedgrid Node and the Fedgrid Network share, so that neither keeps a copy.

- `cli`: the common flags and environment variables, gevent's patching, logging set-up
- `config`: the common configuration fields and the database URL (embedded SQLite or PostgreSQL)
- `database`: the engine, transactional sessions, SQLite pragmas and the Alembic upgrade
- `migrations`: the Alembic environment each app's `env.py` runs with its own models
- `server`: the gevent WSGI server (TCP_NODELAY) and `serve()` with graceful SIGTERM/SIGINT
- `errors`: JSON error answers for ApiError, werkzeug's HTTP errors and unexpected exceptions
- `dashboard`: the stylesheet and the live-refresh script both dashboards serve
- `testing`: starting and stopping real server processes on loopback ports (tests only)

The wire contract itself (error codes, payloads) lives in `fedgrid_protocol`. Nothing here imports
Flask, SQLAlchemy or gevent at package import, so a command line can patch the standard library for
gevent first.
"""

__version__ = "0.1.0"
