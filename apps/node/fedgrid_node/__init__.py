"""Fedgrid Node: hosts models and training plans and runs federated learning cycles.

The app factory is `fedgrid_node.app.create_app`; it is not imported here so that the command line
can patch the standard library for gevent before Flask, SQLAlchemy or requests are loaded.
"""

__version__ = "0.1.0"
