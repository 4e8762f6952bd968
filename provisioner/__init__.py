"""Dockyard's engine: model, lifecycle, templates, backends, bridge, store and server."""

__version__ = "0.1.0"
