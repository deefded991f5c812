"""Fedgrid training plans."""
