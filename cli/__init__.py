"""The `dockyard` command line: a thin client of the Dockyard server's HTTP API."""

from __future__ import annotations

# one version for the whole distribution, so the CLI and the server it starts agree
from provisioner import __version__ as __version__
