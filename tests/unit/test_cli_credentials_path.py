"""Where `dockyard login` stores tokens: the same file platformdirs names, found without
importing platformdirs on every command (on Linux)."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs
import pytest

from cli.credentials import credentials_path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG rule is Linux's")
@pytest.mark.parametrize("xdg", [None, "", "  ", "/srv/conf"])
def test_the_path_is_the_one_platformdirs_gives(
    xdg: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    expected = Path(platformdirs.user_config_dir("dockyard", appauthor=False))
    assert credentials_path() == expected / "credentials.json"
