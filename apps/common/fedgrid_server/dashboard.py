"""What the Node's and the Network's dashboards share: one stylesheet (`dashboard.css`) and the
script that re-fetches the page every few seconds (`refresh.js`), both in ``STATIC_DIR``.

Each app serves them at its own URLs (the Node at /dashboard/…, the Network at /static/…).
Both draw their charts with `fedgrid_server.charts`; the refresh keeps open <details> open.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
