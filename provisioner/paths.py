"""Where Dockyard keeps things: its home (database, logs, address) and the built-ins."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from provisioner.errors import DockyardError

if TYPE_CHECKING:
    from provisioner.pricing import PriceTable
    from provisioner.routing import Target
    from provisioner.session_limits import SessionLimits
    from provisioner.webhooks import Settings

_PACKAGE_DIR = Path(__file__).resolve().parent


def home_dir(explicit: Path | None = None) -> Path:
    """DOCKYARD_HOME, else the user's data dir: one server and one database per home."""
    if explicit is not None:
        path = explicit
    elif os.environ.get("DOCKYARD_HOME"):
        path = Path(os.environ["DOCKYARD_HOME"])
    else:
        import platformdirs  # here: a CLI command with DOCKYARD_HOME set never needs it

        path = Path(platformdirs.user_data_dir("dockyard", appauthor=False))
    # a new home is its user's alone: it holds prompts, logs and the admin token
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path.resolve()


def admin_token_path(home: Path) -> Path:
    """Where a home keeps its local admin's API token (0600; written by the server)."""
    return home / "admin-token"


def read_admin_token(home: Path) -> str | None:
    """The local admin token of a home (the server's, read by the CLI too), or None."""
    try:
        return admin_token_path(home).read_text().strip() or None
    except OSError:
        return None


def cache_dir() -> Path:
    """Shared across homes: image-build work and the bridge zipapp are per machine."""
    given = os.environ.get("DOCKYARD_CACHE")
    if given:
        path = Path(given)
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("dockyard", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def instance_id(home: Path) -> str:
    """A stable id for this home, put on every Docker resource it creates."""
    marker = home / "instance.json"
    try:
        return str(json.loads(marker.read_text())["id"])
    except (OSError, ValueError, KeyError):
        ident = uuid.uuid4().hex[:12]
        marker.write_text(json.dumps({"id": ident}))
        return ident


def _builtin(kind: str) -> Path:
    # A wheel carries them inside the package; a source checkout keeps them at the root.
    shipped = _PACKAGE_DIR / "_builtin" / kind
    if shipped.is_dir():
        return shipped
    return _PACKAGE_DIR.parent / kind


def builtin_templates_dir() -> Path:
    """The templates that ship with Dockyard."""
    return _builtin("templates")


def builtin_presets_dir() -> Path:
    """The presets that ship with Dockyard."""
    return _builtin("presets")


def _config(home: Path | None = None) -> tuple[Path, dict[str, object]]:
    """HOME/config.yaml as a mapping (empty when the file is absent)."""
    config = home_dir(home) / "config.yaml"
    if not config.is_file():
        return config, {}
    import yaml  # only the server reads config.yaml; the CLI imports this module too

    try:
        data = yaml.safe_load(config.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DockyardError(f"{config}: invalid YAML: {exc}") from exc
    return config, data if isinstance(data, dict) else {}


def settings(home: Path | None = None) -> dict[str, object]:
    """HOME/config.yaml as a mapping (empty when the file is absent)."""
    return _config(home)[1]


def _configured_dirs(setting: str, variable: str) -> list[Path]:
    """Directories from the home's config.yaml (`setting: [dirs]`), then from `variable`."""
    dirs: list[Path] = []
    config, data = _config()
    value = data.get(setting, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise DockyardError(f"{config}: {setting} must be a list of directories")
    dirs += [Path(str(v)).expanduser() for v in value]
    dirs += [Path(p) for p in os.environ.get(variable, "").split(os.pathsep) if p]
    return dirs


def max_workspaces(home: Path | None = None) -> int | None:
    """The most workspaces that may run at once: DOCKYARD_MAX_WORKSPACES, else
    `capacity: {workspaces: N}` in HOME/config.yaml; None (unlimited) when neither is set."""
    from provisioner.capacity import parse_limit  # the CLI imports this module too

    try:
        if os.environ.get("DOCKYARD_MAX_WORKSPACES", "").strip():
            return parse_limit(os.environ["DOCKYARD_MAX_WORKSPACES"], "DOCKYARD_MAX_WORKSPACES")
        config, data = _config(home)
        section = data.get("capacity") or {}
        if not isinstance(section, dict):
            raise ValueError(f"{config}: capacity must be a mapping, e.g. {{workspaces: 4}}")
        return parse_limit(section.get("workspaces"), f"{config}: capacity.workspaces")
    except ValueError as exc:
        raise DockyardError(str(exc), hint="set a positive integer, or leave it unset") from exc


def default_retention(home: Path | None = None) -> str | None:
    """How long finished tasks' workspaces are kept when their template does not say:
    DOCKYARD_RETENTION, else `retention:` in HOME/config.yaml (keep, or a duration such as
    24h); None (keep) when neither is set."""
    from provisioner.durations import parse_retention  # the CLI imports this module too
    from provisioner.errors import ParameterError

    value = os.environ.get("DOCKYARD_RETENTION", "").strip() or None
    where = "DOCKYARD_RETENTION"
    if value is None:
        config, data = _config(home)
        raw = data.get("retention")
        value, where = (None if raw is None else str(raw)), f"{config}: retention"
    try:
        parse_retention(value)
    except ParameterError as exc:
        raise DockyardError(f"{where}: {exc.message}") from exc
    return value


def kept_bundles(home: Path | None = None) -> tuple[int, int]:
    """(max bytes, days) of `kept_bundles: {max_mb, days}` in HOME/config.yaml: the
    largest bundle of a deleted task's branch the server keeps, and for how long (0 days:
    until removed by hand). Defaults: 200 MB, 30 days."""
    from provisioner.gitwork.kept import KeptError, parse_settings

    config, data = _config(home)
    try:
        return parse_settings(data.get("kept_bundles"), f"{config}: kept_bundles")
    except KeptError as exc:
        raise DockyardError(str(exc), hint="e.g. kept_bundles: {max_mb: 200, days: 30}") from exc


def session_limits(home: Path | None = None) -> SessionLimits:
    """`sessions: {per_task, per_user}` in HOME/config.yaml: how many interactive sessions
    (shells, exec streams, port-forward connections) may be open at once per task and per
    user. Defaults: 8 and 32."""
    from provisioner.session_limits import SessionLimitError, parse_settings

    config, data = _config(home)
    try:
        return parse_settings(data.get("sessions"), f"{config}: sessions")
    except SessionLimitError as exc:
        raise DockyardError(str(exc), hint="e.g. sessions: {per_task: 8, per_user: 32}") from exc


def database_pool(home: Path | None = None) -> dict[str, int]:
    """`database: {pool_size, max_overflow, pool_timeout}` of HOME/config.yaml: the
    PostgreSQL connection pool of this server (unset keys keep Store's defaults)."""
    config, data = _config(home)
    section = data.get("database") or {}
    if not isinstance(section, dict):
        raise DockyardError(f"{config}: database must be a mapping, e.g. {{pool_size: 20}}")
    pool: dict[str, int] = {}
    for key, low in (("pool_size", 1), ("max_overflow", 0), ("pool_timeout", 1)):
        value = section.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 10000:
            raise DockyardError(
                f"{config}: database.{key} must be an integer from {low} to 10000",
                hint="see docs/operating.md, sizing the connection pool",
            )
        pool[key] = value
    unknown = sorted(set(section) - {"pool_size", "max_overflow", "pool_timeout"})
    if unknown:
        raise DockyardError(
            f"{config}: database has unknown keys: {', '.join(map(str, unknown))}",
            hint="known: pool_size, max_overflow, pool_timeout",
        )
    return pool


def metrics_bind(home: Path | None = None) -> str | None:
    """`metrics: {bind: host:port}` of HOME/config.yaml: serve /metrics without a token
    there too (None: only on the API's address, with a token)."""
    config, data = _config(home)
    section = data.get("metrics") or {}
    if not isinstance(section, dict):
        raise DockyardError(f"{config}: metrics must be a mapping, e.g. {{bind: '127.0.0.1:9464'}}")
    value = section.get("bind")
    return None if value is None else str(value)


def pricing(home: Path | None = None) -> PriceTable:
    """The `pricing:` table of HOME/config.yaml (dollars per million tokens by model),
    checked at startup: a ParameterError names the file and the key that is wrong."""
    from provisioner.pricing import parse_pricing  # the CLI imports this module too

    config, data = _config(home)
    return parse_pricing(data.get("pricing"), f"{config}: pricing")


def webhook_settings(home: Path | None = None) -> Settings:
    """`webhooks:` of HOME/config.yaml (provisioner.webhooks.Settings)."""
    from provisioner.webhooks import parse_settings  # the CLI imports this module too

    config, data = _config(home)
    return parse_settings(data.get("webhooks"), f"{config}: webhooks")


def template_search_path() -> list[Path]:
    """Built-ins, then `template_path` in HOME/config.yaml, then DOCKYARD_TEMPLATE_PATH."""
    return [builtin_templates_dir(), *_configured_dirs("template_path", "DOCKYARD_TEMPLATE_PATH")]


def preset_search_path() -> list[Path]:
    """Built-ins, then `preset_path` (config.yaml), then DOCKYARD_PRESET_PATH directories."""
    return [builtin_presets_dir(), *_configured_dirs("preset_path", "DOCKYARD_PRESET_PATH")]


def targets(home: Path | None = None) -> dict[str, Target]:
    """The named routes of `targets:` in HOME/config.yaml (see provisioner.routing), checked;
    a DockyardError naming the bad key otherwise. Their templates are checked by the
    server as it starts (`check_targets`)."""
    from provisioner.routing import parse_targets  # the CLI imports this module too

    config, data = _config(home)
    try:
        return dict(parse_targets(data.get("targets"), f"{config}: targets"))
    except ValueError as exc:
        raise DockyardError(str(exc), hint="see Targets in docs/running-a-server.md") from exc
