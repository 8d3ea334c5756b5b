"""Framework-agnostic building blocks: settings, logging, health, metrics.

Nothing in this package imports the web framework; the adapter (`app.py`, `web/`) does.
"""
