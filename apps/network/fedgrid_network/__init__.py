"""Fedgrid Network (see issue: Network app)."""
