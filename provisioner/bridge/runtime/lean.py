"""Importing the standard library's HTTP modules without `ssl`.

`http.client` (and `http.server`, through it) imports `ssl` only to offer HTTPS
connections: ~4-8 ms of a process's start, spent on OpenSSL. The bridge serves plain
HTTP and needs no HTTPS from that module.
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_without_ssl(*names: str) -> list[ModuleType]:
    """Import `names` (in order) with `import ssl` failing, when neither ssl nor
    http.client is loaded yet; a process that already has them just imports. A later
    `import ssl` works as ever (the modules imported here lack only their HTTPS parts)."""
    blocked = "ssl" not in sys.modules and "http.client" not in sys.modules
    if blocked:
        sys.modules["ssl"] = None  # type: ignore[assignment]  # import ssl: ImportError
    try:
        modules = []
        for name in names:
            __import__(name)  # not importlib's import_module: importlib is not loaded under -S
            modules.append(sys.modules[name])
        return modules
    finally:
        if blocked:
            del sys.modules["ssl"]
