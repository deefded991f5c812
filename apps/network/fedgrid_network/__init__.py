"""Fedgrid Network: a directory of Nodes that routes devices to the Node hosting a model.

The app factory is `fedgrid_network.app.create_app`; it is not imported here so that the command
line can patch the standard library for gevent before Flask, SQLAlchemy or requests are loaded.
"""

__version__ = "0.1.0"
