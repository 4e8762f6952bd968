"""The bridge's configuration, loaded and validated from a JSON file."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from .agentapi import AGENT_TYPES
from .agentapi import agent_type as command_agent_type
from .hooks import SCREEN, STATE_SOURCES


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""


# Profile and BridgeConfig are NamedTuples, not frozen dataclasses: the launcher reads the
# config before it starts the agent, and importing dataclasses (inspect, ast, ...) cost
# ~7 ms of that on a small machine. Both are immutable all the same (_replace for a copy).


class Profile(NamedTuple):
    """How to recognise the agent's input prompt and how to submit to it."""

    prompt_regex: str = r"^> ?$"
    quiet_ms: int = 250
    submit: str = "line"
    take_timeout_s: float = 10.0
    # what decides working/idle: the screen (prompt_regex + quiet_ms) or the agent's hooks
    state_source: str = SCREEN
    # the agent writes its prompt last, nothing after it: at the prompt is idle, no quiet_ms
    prompt_last: bool = False

    @property
    def quiet_s(self) -> float:
        """The quiet period in seconds."""
        return self.quiet_ms / 1000.0


class BridgeConfig(NamedTuple):
    """Everything the bridge needs to run one agent."""

    agent_command: list[str]
    resume_command: list[str] | None = None
    cwd: str = "/workspace"
    env: dict[str, str] = {}  # never changed in place: configs are immutable
    listen: str = "0.0.0.0:7777"
    token_file: str = "/opt/dockyard/token"
    state_dir: str = "/home/agent/.dockyard/bridge"
    initial_prompt: str | None = None
    initial_prompt_id: str | None = None
    profile: Profile = Profile()
    columns: int = 120
    rows: int = 40
    # a shell script run once before the agent's first start; None: no setup
    setup_script: str | None = None
    # the shell and its flag, given the script as one argument; None: bash -c, else sh -c
    setup_shell: list[str] | None = None
    # agentapi's agent type (claude, aider, goose, codex, ..., custom); None: told by the
    # program agent_command runs
    agent_type_override: str | None = None
    # the task whose workspace this is: a state dir that another task's bridge wrote (a
    # fork's copy of its parent's disk) keeps only its run state (see StateDir.claim)
    workspace_id: str | None = None
    # files written (0600) into <state_dir>/secrets before the setup runs, such as the
    # repository token its git credential helper reads: name -> content
    secret_files: dict[str, str] = {}

    @property
    def agent_type(self) -> str:
        """agentapi's AgentType of the agent: GET /status and status_change carry it."""
        return self.agent_type_override or command_agent_type(self.agent_command)

    @property
    def host(self) -> str:
        """The address to listen on."""
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        """The port to listen on."""
        return int(self.listen.rpartition(":")[2])

    def read_token(self) -> str:
        """Return the API token: the token file's stripped content."""
        try:
            token = Path(self.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read token_file {self.token_file}: {exc.strerror}") from exc
        if not token:
            raise ConfigError(f"token_file {self.token_file} is empty")
        return token


_SUBMIT_MODES = ("line", "paste")


def _command(data: dict[str, Any], key: str, required: bool) -> list[str] | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(part, str) and part for part in value)
    ):
        raise ConfigError(f"{key} must be a non-empty list of non-empty strings")
    return list(value)


def _optional_str(data: dict[str, Any], key: str, default: str | None) -> str | None:
    value = data.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{key} must be a string or null")
    return value


def _agent_type(data: dict[str, Any]) -> str | None:
    value = _optional_str(data, "agent_type", None)
    if value is not None and value not in AGENT_TYPES:
        raise ConfigError(f"agent_type must be one of: {', '.join(AGENT_TYPES)}")
    return value


def _setup_script(data: dict[str, Any]) -> str | None:
    script = _optional_str(data, "setup_script", None)
    # a blank script would run nothing: it is no setup at all
    return script if script is not None and script.strip() else None


SECRET_FILE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def _secret_files(data: dict[str, Any]) -> dict[str, str]:
    value = data.get("secret_files") or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and SECRET_FILE_NAME.fullmatch(k) and isinstance(v, str)
        for k, v in value.items()
    ):
        raise ConfigError("secret_files must be an object of file names ([a-z0-9-]) to strings")
    return dict(value)


def _str(data: dict[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} must be a non-empty string")
    return value


def _bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false")
    return value


def _number(data: dict[str, Any], key: str, default: float, minimum: float) -> float:
    value = data.get(key, default)
    # bool is an int subclass, but `true` is never a meaningful size or duration
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"{key} must be a number >= {minimum}")
    return value


def _profile(raw: Any, warn: Callable[[str], None]) -> Profile:
    if raw is None:
        return Profile()
    if not isinstance(raw, dict):
        raise ConfigError("profile must be an object")
    known = {"prompt_regex", "quiet_ms", "submit", "take_timeout_s", "state_source", "prompt_last"}
    unknown = sorted(set(raw) - known)
    if unknown:
        warn(f"ignoring unknown profile keys: {', '.join(unknown)}")
    defaults = Profile()
    regex = _str(raw, "prompt_regex", defaults.prompt_regex)
    try:
        re.compile(regex)
    except re.error as exc:
        raise ConfigError(f"profile.prompt_regex is not a valid regex: {exc}") from exc
    submit = _str(raw, "submit", defaults.submit)
    if submit not in _SUBMIT_MODES:
        raise ConfigError(f"profile.submit must be one of: {', '.join(_SUBMIT_MODES)}")
    state_source = _str(raw, "state_source", defaults.state_source)
    if state_source not in STATE_SOURCES:
        raise ConfigError(f"profile.state_source must be one of: {', '.join(STATE_SOURCES)}")
    return Profile(
        prompt_regex=regex,
        quiet_ms=int(_number(raw, "quiet_ms", defaults.quiet_ms, 1)),
        submit=submit,
        take_timeout_s=float(_number(raw, "take_timeout_s", defaults.take_timeout_s, 0.1)),
        state_source=state_source,
        prompt_last=_bool(raw, "prompt_last", defaults.prompt_last),
    )


_KEYS = {
    "agent_command", "resume_command", "cwd", "env", "listen", "token_file", "state_dir",
    "initial_prompt", "initial_prompt_id", "profile", "columns", "rows",
    "setup_script", "setup_shell", "agent_type", "workspace_id", "secret_files",
}  # fmt: skip


def _ignore(message: str) -> None:
    """Drop a warning."""


def parse_config(data: Any, warn: Callable[[str], None] = _ignore) -> BridgeConfig:
    """Validate a decoded JSON document and build a BridgeConfig from it."""
    if not isinstance(data, dict):
        raise ConfigError("the configuration must be a JSON object")
    # unknown keys only warn, so a host that writes a newer key does not stop an older bridge
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        warn(f"ignoring unknown configuration keys: {', '.join(unknown)}")
    agent_command = _command(data, "agent_command", required=True)
    assert agent_command is not None
    env = data.get("env") or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and k and "=" not in k and isinstance(v, str) for k, v in env.items()
    ):
        raise ConfigError("env must be an object of string names to string values")
    defaults = BridgeConfig(agent_command=agent_command)
    listen = _str(data, "listen", defaults.listen)
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen must be HOST:PORT, got {listen!r}")
    return BridgeConfig(
        agent_command=agent_command,
        resume_command=_command(data, "resume_command", required=False),
        cwd=_str(data, "cwd", defaults.cwd),
        env=dict(env),
        listen=listen,
        token_file=_str(data, "token_file", defaults.token_file),
        state_dir=_str(data, "state_dir", defaults.state_dir),
        initial_prompt=_optional_str(data, "initial_prompt", None),
        initial_prompt_id=_optional_str(data, "initial_prompt_id", None),
        profile=_profile(data.get("profile"), warn),
        columns=int(_number(data, "columns", defaults.columns, 20)),
        rows=int(_number(data, "rows", defaults.rows, 2)),
        setup_script=_setup_script(data),
        setup_shell=_command(data, "setup_shell", required=False),
        agent_type_override=_agent_type(data),
        workspace_id=_optional_str(data, "workspace_id", None),
        secret_files=_secret_files(data),
    )


def config_document(config: BridgeConfig) -> dict[str, Any]:
    """The JSON document parse_config reads back as `config`: the one definition of the
    bridge config's wire form, used by the server that writes it and the bridge alike."""
    profile = config.profile
    document: dict[str, Any] = {
        "agent_command": list(config.agent_command),
        "resume_command": list(config.resume_command) if config.resume_command else None,
        "cwd": config.cwd,
        "env": dict(config.env),
        "listen": config.listen,
        "token_file": config.token_file,
        "state_dir": config.state_dir,
        "initial_prompt": config.initial_prompt,
        "initial_prompt_id": config.initial_prompt_id,
        "setup_script": config.setup_script,
        "profile": {
            "prompt_regex": profile.prompt_regex,
            "quiet_ms": profile.quiet_ms,
            "submit": profile.submit,
            "take_timeout_s": profile.take_timeout_s,
            "state_source": profile.state_source,
            "prompt_last": profile.prompt_last,
        },
        "columns": config.columns,
        "rows": config.rows,
    }
    if config.setup_shell is not None:
        document["setup_shell"] = list(config.setup_shell)
    if config.agent_type_override is not None:
        document["agent_type"] = config.agent_type_override
    if config.workspace_id is not None:
        document["workspace_id"] = config.workspace_id
    if config.secret_files:
        document["secret_files"] = dict(config.secret_files)
    return document


def load_config(path: str | Path, warn: Callable[[str], None] = _ignore) -> BridgeConfig:
    """Read and validate the configuration file at `path`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    return parse_config_text(text, f"config file {path}", warn)


def parse_config_text(
    text: str, source: str, warn: Callable[[str], None] = _ignore
) -> BridgeConfig:
    """Validate a configuration given as JSON text; `source` names it in errors."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source} is not valid JSON: {exc}") from exc
    return parse_config(data, warn)
