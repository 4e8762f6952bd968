"""Workspace images built locally: the Debian base and each template's image on top."""
