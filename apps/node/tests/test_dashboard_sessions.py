"""The dashboard's signed cookie is opened on the dashboard's pages only."""

from __future__ import annotations

from flask.sessions import NullSession, SecureCookieSession

from fedgrid_node.app import create_app
from fedgrid_node.config import NodeConfig


def test_the_session_cookie_is_opened_only_where_the_dashboard_reads_it(tmp_path):
    app = create_app(NodeConfig(data_dir=tmp_path, admin_token="t"))
    try:
        for path, opened in (("/", True), ("/dashboard/checkpoint", True),
                             ("/model-centric/report", False), ("/ws", False),
                             ("/metrics", False), ("/js/fedgrid.js", False)):
            with app.test_request_context(path):
                session = app.session_interface.open_session(app, app.request_class(
                    {"PATH_INFO": path, "REQUEST_METHOD": "GET", "SERVER_NAME": "node",
                     "SERVER_PORT": "80", "wsgi.url_scheme": "http"}))
                # (NullSession is a SecureCookieSession that refuses writes: test which one.)
                assert isinstance(session, SecureCookieSession), path
                assert isinstance(session, NullSession) is not opened, path
    finally:
        app.extensions["fedgrid"].engine.stop()
