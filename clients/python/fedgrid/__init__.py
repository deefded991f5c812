"""Fedgrid Python SDK."""
