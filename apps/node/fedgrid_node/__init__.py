"""Fedgrid Node."""
