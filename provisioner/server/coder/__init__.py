"""Coder's Tasks REST API, served by Dockyard so Coder users' scripts and tools run
unchanged (see docs/coder-migration.md)."""
