"""ZONE."""
