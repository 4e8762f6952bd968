"""Build the bridge zipapp: the runtime package plus pyte and wcwidth, for a container's python3."""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import tempfile
import zipfile
from pathlib import Path

RUNTIME_PACKAGE = "dockyard_bridge"
SHEBANG = b"#!/usr/bin/env python3\n"
# Where a server restarting an existing workspace copies its own bridge (BRIDGE_DIR): a
# zipapp found there runs instead of this one, so the workspace's bridge matches the server
OVERRIDE = "/opt/dockyard/bridge.pyz"
# How Python runs the bridge: isolated (no PYTHON* variables, no user site, no script
# directory on sys.path) and without site-packages. The zipapp holds everything it
# imports, and site's own start-up work is ~5 ms before the agent can be started.
PYTHON_FLAGS = ("-I", "-S")
MAIN_PY = (
    '"""Run the Dockyard bridge (a newer one copied in beside it, when there is one)."""\n'
    "import os\n"
    "import sys\n"
    "\n"
    f"OVERRIDE = {OVERRIDE!r}\n"
    "if os.path.abspath(sys.argv[0]) != OVERRIDE and os.path.isfile(OVERRIDE):\n"
    "    os.execv(sys.executable, [sys.executable, "
    + "".join(f"{flag!r}, " for flag in PYTHON_FLAGS)
    + "OVERRIDE, *sys.argv[1:]])\n"
    "\n"
    f"from {RUNTIME_PACKAGE}.launch import main\n"
    "\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
_LAYOUT = b"stored"  # how the zip is written (see build_zipapp); part of its name
# Fixed zip timestamps: the same sources always give the same bytes, hence the same name.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _package_dir(name: str) -> Path:
    """The source directory of an installed package."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed; the bridge zipapp needs it")
    return Path(next(iter(spec.submodule_search_locations)))


def _package_files(root: Path, arc_root: str) -> list[tuple[str, bytes]]:
    """(archive name, content) for every file of a package, without bytecode caches."""
    files = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        arcname = f"{arc_root}/{path.relative_to(root).as_posix()}"
        files.append((arcname, path.read_bytes()))
    return files


def zipapp_files() -> list[tuple[str, bytes]]:
    """Everything the zipapp holds, sorted by archive name."""
    files = [("__main__.py", MAIN_PY.encode())]
    files += _package_files(Path(__file__).resolve().parent / "runtime", RUNTIME_PACKAGE)
    files += _package_files(_package_dir("pyte"), "pyte")
    files += _package_files(_package_dir("wcwidth"), "wcwidth")
    return sorted(files)


def _bytecode(arcname: str, source: bytes) -> bytes:
    """An unchecked hash-based .pyc for `source`, valid for this interpreter's version."""
    code = compile(source, arcname, "exec", dont_inherit=True)
    flags = (0b01).to_bytes(4, "little")  # hash-based, source not re-checked: zip is immutable
    return (
        importlib.util.MAGIC_NUMBER
        + flags
        + importlib.util.source_hash(source)
        + marshal.dumps(code)
    )


def _with_bytecode(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Add a .pyc beside every .py."""
    # a zip cannot cache bytecode: without these every bridge start compiles pyte and
    # wcwidth again (about 0.15 s); another Python version sees a wrong magic number in
    # them and falls back to the sources
    out = list(files)
    for name, data in files:
        if name.endswith(".py") and name != "__main__.py":
            out.append((name[:-3] + ".pyc", _bytecode(name, data)))
    return sorted(out)


def build_zipapp(cache_dir: Path) -> Path:
    """Return the bridge zipapp in cache_dir (bridge-<sha12>.pyz), building it if missing."""
    files = zipapp_files()
    # the layout counts too: a zip built another way (deflated) is another bridge file
    digest = hashlib.sha256(importlib.util.MAGIC_NUMBER + _LAYOUT)
    for name, data in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    cache_dir = Path(cache_dir)
    target = cache_dir / f"bridge-{digest.hexdigest()[:12]}.pyz"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".bridge-", suffix=".tmp", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(SHEBANG)
            # Stored, not deflated: every bridge start imports ~60 modules' bytecode from
            # here, and inflating them cost ~6 ms of CPU (as much as importing from an
            # unpacked tree saves) in a workspace of one CPU that the agent is starting in.
            # The zip is ~1.1 MB instead of ~0.4, written once per bridge version.
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as archive:
                for name, data in _with_bytecode(files):
                    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                    info.compress_type = zipfile.ZIP_STORED
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, data)
        os.chmod(tmp_name, 0o755)
        # rename is atomic: a concurrent builder or reader sees no file or a whole one
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
