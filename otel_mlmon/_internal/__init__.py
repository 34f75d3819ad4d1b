"""Machinery behind the public API; no stability promise."""
