#!/usr/bin/env python3
"""Dockyard's glue around OpenAI's Codex CLI in a workspace (standard library only).

dockyard-codex seed    write ~/.codex/config.toml so that `codex` starts straight into its
                       interactive TUI: the model endpoint as a custom provider (no login),
                       no approvals and no sandbox of its own (the workspace container is the
                       sandbox), no update check, no trust or model-upgrade questions, nothing
                       fetched from ChatGPT or GitHub but what Codex cannot be told to skip.
                       Dockyard's MCP tools (dockyard-mcp) as an MCP server. The
                       template's setup script; safe to run again: settings of the
                       user's own in the file are kept.

Read from the environment: DOCKYARD_CODEX_BASE_URL (the OpenAI-compatible endpoint, e.g.
https://api.openai.com/v1), DOCKYARD_CODEX_MODEL, and CODEX_HOME (default ~/.codex). The
API key stays in OPENAI_API_KEY: the provider names that variable, never its value.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

PROVIDER = "dockyard"
# the in-workspace MCP relay the bridge puts on the agent's PATH (docs/agents.md)
MCP_COMMAND = "dockyard-mcp"
KEY_ENV = "OPENAI_API_KEY"
# Codex features that call services an API key cannot use or that a self-hosted endpoint
# does not have: ChatGPT apps/connectors (chatgpt.com), the plugin marketplaces (GitHub),
# plugin suggestions and the hosted image-generation tool.
FEATURES_OFF = ("apps", "plugins", "remote_plugin", "tool_suggest", "image_generation")
MODELS_TIMEOUT_S = 60

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def settings(base_url: str, model: str, workdir: str, migrations: dict[str, str]) -> dict[str, Any]:
    """What seed puts into config.toml (merged over what is there)."""
    config: dict[str, Any] = {}
    if model:
        config["model"] = model
    config.update(
        {
            "model_provider": PROVIDER,
            # never stop to ask: execution failures go straight back to the model
            "approval_policy": "never",
            # Codex's own sandbox (bubblewrap, landlock, seccomp) needs namespaces and
            # privileges a hardened container does not give; the container is the sandbox
            "sandbox_mode": "danger-full-access",
            "check_for_update_on_startup": False,
            # a prompt typed in one go is a prompt, not a paste whose Enter becomes a newline
            "disable_paste_burst": True,
            # the hosted web search tool exists at OpenAI only
            "web_search": "disabled",
            "model_providers": {
                PROVIDER: {
                    "name": "Dockyard model endpoint",
                    "base_url": base_url,
                    "env_key": KEY_ENV,
                    "wire_api": "responses",
                }
            },
            "analytics": {"enabled": False},
            "feedback": {"enabled": False},
            # the working indicator animates while a turn runs: the bridge's quiet time
            # (agent.profile.quiet_ms) counts on that output to tell working from idle.
            # No alternate screen: finished messages scroll up as whole lines, which the
            # task's logs can show (in the alternate screen they are only ever redrawn)
            "tui": {"animations": True, "show_tooltips": False, "alternate_screen": "never"},
            "notice": {"hide_full_access_warning": True, "model_migrations": migrations},
            "features": {name: False for name in FEATURES_OFF},
            "projects": {workdir: {"trust_level": "trusted"}},
        }
    )
    return config


def model_migrations(codex: str = "codex") -> dict[str, str]:
    """Every model upgrade in Codex's model catalog ({model: upgrade}), marked as seen: a
    model with a newer one would otherwise open with a "try the new model?" question."""
    try:
        out = subprocess.run(
            [codex, "debug", "models"],
            capture_output=True,
            text=True,
            timeout=MODELS_TIMEOUT_S,
            check=True,
            stdin=subprocess.DEVNULL,
        ).stdout
        models = json.loads(out).get("models") or []
    except (OSError, subprocess.SubprocessError, ValueError, AttributeError) as exc:
        sys.stderr.write(f"dockyard-codex: cannot read Codex's model catalog ({exc})\n")
        return {}
    found: dict[str, str] = {}
    for entry in models:
        if not isinstance(entry, dict):
            continue
        upgrade = entry.get("upgrade")
        target = upgrade.get("model") if isinstance(upgrade, dict) else None
        if isinstance(entry.get("slug"), str) and isinstance(target, str) and target:
            found[entry["slug"]] = target
    return found


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` laid on `base`: tables merged key by key, any other value replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# -- a TOML writer for what tomllib reads --------------------------------------------------


def _string(text: str) -> str:
    escaped = json.dumps(text, ensure_ascii=False)  # JSON's escapes are TOML's too
    return escaped.replace("\x7f", "\\u007f")  # ... but TOML also forbids a raw DEL


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and value != value:
            return "nan"
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write a {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(path: list[str], table: dict[str, Any], out: list[str]) -> None:
    plain = [(k, v) for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)]
    if path and (plain or not table):
        out.append("")
        out.append("[" + ".".join(_key(p) for p in path) + "]")
    out.extend(f"{_key(k)} = {_value(v)}" for k, v in plain)
    for key, value in table.items():
        if isinstance(value, dict):
            _table([*path, key], value, out)
        elif _is_table_array(value):
            for item in value:
                out.append("")
                out.append("[[" + ".".join(_key(p) for p in [*path, key]) + "]]")
                item_plain = {
                    k: v
                    for k, v in item.items()
                    if not isinstance(v, dict) and not _is_table_array(v)
                }
                out.extend(f"{_key(k)} = {_value(v)}" for k, v in item_plain.items())
                nested = {k: v for k, v in item.items() if k not in item_plain}
                if nested:
                    # sub-tables of an array item: written inline, which TOML allows
                    out.extend(f"{_key(k)} = {_value(v)}" for k, v in nested.items())


def dumps(data: dict[str, Any]) -> str:
    """`data` as a TOML document (tables as sections, arrays of tables as [[...]])."""
    out: list[str] = []
    _table([], data, out)
    return "\n".join(out).lstrip("\n") + "\n"


# -- the commands ---------------------------------------------------------------------------


def codex_home() -> Path:
    """Where Codex keeps its configuration and sessions."""
    return Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        backup = path.with_name(path.name + ".broken")
        sys.stderr.write(f"dockyard-codex: {path} is unreadable ({exc}); moved to {backup}\n")
        with contextlib.suppress(OSError):
            path.replace(backup)
        return {}


def _save(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.dockyard.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def seed(workdir: str, codex: str = "codex") -> int:
    base_url = os.environ.get("DOCKYARD_CODEX_BASE_URL", "").strip()
    if not base_url:
        sys.stderr.write("dockyard-codex: DOCKYARD_CODEX_BASE_URL is not set\n")
        return 2
    model = os.environ.get("DOCKYARD_CODEX_MODEL", "").strip()
    path = codex_home() / "config.toml"
    config = merge(_load(path), settings(base_url, model, workdir, model_migrations(codex)))
    relay = shutil.which(MCP_COMMAND)
    if relay:
        # Dockyard's tools for this task, over the bridge's relay (a stdio MCP server)
        config = merge(config, {"mcp_servers": {"dockyard": {"command": relay}}})
    _save(
        path,
        "# Written by dockyard-codex seed; other settings of yours are kept.\n" + dumps(config),
    )
    print(
        f"dockyard-codex: Codex set up for {workdir}: model {model or '(default)'} "
        f"at {base_url} (key from ${KEY_ENV})"
    )
    return 0


def main(argv: list[str]) -> int:
    if argv == ["seed"]:
        return seed(os.getcwd())
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
