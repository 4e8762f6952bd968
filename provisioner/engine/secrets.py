"""Secret parameter values: kept out of the database, in a 0600 file per task.

A secret comes from `--param`, the server's environment (the parameter's `env`, else
DOCKYARD_SECRET_<NAME>) or HOME/secrets.yaml (`NAME: value`, or per template
`TEMPLATE: {NAME: value}`). The database and every API answer only ever see it masked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import TemplateError
from provisioner.templating.catalog import Template


def recipe_key(kind: str, recipe_id: str) -> str:
    """Where a schedule's or trigger's secret parameter values are kept in a SecretStore
    (beside tasks', whose ids are UUIDs: no clash): `schedule-<id>`, `trigger-<id>`."""
    return f"{kind}-{recipe_id}"


class SecretStore:
    """Where a task's secret values live between its creation and its deletion."""

    def __init__(self, home: Path | None) -> None:
        self.home = home
        self._memory: dict[str, dict[str, Any]] = {}  # when there is no home (tests)

    def _file(self, task_id: str) -> Path | None:
        return self.home / "secrets" / f"{task_id}.json" if self.home else None

    def _secrets_yaml(self, template: str) -> dict[str, Any]:
        if self.home is None or not (self.home / "secrets.yaml").is_file():
            return {}
        path = self.home / "secrets.yaml"
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TemplateError(f"{path}: invalid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise TemplateError(f"{path}: expected a mapping of NAME: value")
        scoped = data.get(template)
        flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
        return {**flat, **(scoped if isinstance(scoped, dict) else {})}

    def from_environment(self, template: Template, given: dict[str, Any]) -> dict[str, Any]:
        """Values for the template's secrets that the task did not give itself."""
        found: dict[str, Any] = {}
        from_file = self._secrets_yaml(template.name)
        for param in template.config.parameters:
            if not param.secret or param.name in given:
                continue
            var = param.env or f"DOCKYARD_SECRET_{param.name.upper()}"
            if os.environ.get(var):
                found[param.name] = os.environ[var]
            elif param.name in from_file:
                found[param.name] = from_file[param.name]
        return found

    def save(self, task_id: str, values: dict[str, Any]) -> None:
        """Keep the task's secret values (owner-only file)."""
        path = self._file(task_id)
        if path is None:
            self._memory[task_id] = dict(values)
            return
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(values, out)
        tmp.replace(path)

    def load(self, task_id: str) -> dict[str, Any]:
        """The task's secret values (empty when it has none)."""
        path = self._file(task_id)
        if path is None:
            return dict(self._memory.get(task_id, {}))
        try:
            return dict(json.loads(path.read_text()))
        except FileNotFoundError:
            return {}

    def delete(self, task_id: str) -> None:
        """Forget the task's secrets."""
        path = self._file(task_id)
        if path is None:
            self._memory.pop(task_id, None)
        elif path.exists():
            path.unlink()
