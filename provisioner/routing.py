"""Targets: named routes of the server's config, and how a new task finds its route.
Pure logic, no I/O: the server reads the config, the engine applies the decisions.

    targets:
      builder: {template: aider, preset: default, max_concurrent: 2,
                codebases: [api-server, global]}

      reviewers: {workers: true, codebases: [api-server]}

A `workers: true` target has no template: its tasks are queue-only, claimed by workers
(provisioner.claiming) and never provisioned.

`task create --target builder` runs the target's template and preset. `--codebase ID`
picks a target registered for that codebase (CodeTether's routing; `global` is a codebase
like any other, served by the targets that list it). A task for a codebase no target
serves waits, pending, until a target serving it is configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provisioner.capacity import parse_limit
from provisioner.errors import ParameterError
from provisioner.queueing import REGISTRATION_CODEBASE, check_label

MAX_TARGETS = 200
MAX_CODEBASES = 200
TARGET_KEYS = ("template", "preset", "max_concurrent", "codebases", "workers")


@dataclass(frozen=True)
class Target:
    """One named route: what its tasks run, how many at once, which codebases it serves."""

    name: str
    template: str | None  # None only for a workers target
    preset: str | None = None
    max_concurrent: int | None = None  # None: only the server's own limit applies
    codebases: tuple[str, ...] = ()
    workers: bool = False  # queue-only: its tasks are claimed by workers, not provisioned

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "template": self.template,
            "preset": self.preset,
            "max_concurrent": self.max_concurrent,
            "codebases": list(self.codebases),
            "workers": self.workers,
        }


def _label(value: object, where: str) -> str:
    """A name of the config (target, template, preset, codebase), checked like a label."""
    if not isinstance(value, str):
        shown = str(value)[:40]
        raise ValueError(f"{where}: expected a name, got {type(value).__name__} {shown!r}")
    try:
        check_label(value, "name")
    except ParameterError as exc:
        raise ValueError(f"{where}: {exc.message}") from None
    return value


def _codebase(value: object, where: str) -> str:
    if value == REGISTRATION_CODEBASE:
        return value
    return _label(value, where)


def parse_targets(value: object, where: str = "targets") -> dict[str, Target]:
    """The `targets:` section of the config, checked; ValueError naming the bad key."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping of target names to routes")
    if len(value) > MAX_TARGETS:
        raise ValueError(f"{where}: {len(value)} targets; at most {MAX_TARGETS}")
    found: dict[str, Target] = {}
    for raw_name, body in value.items():
        name = _label(raw_name, f"{where}: target name")
        at = f"{where}.{name}"
        if not isinstance(body, Mapping):
            raise ValueError(f"{at}: expected a mapping with template (and preset, ...)")
        unknown = [str(k)[:40] for k in body if k not in TARGET_KEYS]
        if unknown:
            raise ValueError(f"{at}: unknown key {unknown[0]!r} (known: {', '.join(TARGET_KEYS)})")
        workers = body.get("workers", False)
        if not isinstance(workers, bool):
            raise ValueError(f"{at}.workers: expected true or false")
        if workers:
            clash = [k for k in ("template", "preset", "max_concurrent") if k in body]
            if clash:
                raise ValueError(
                    f"{at}.{clash[0]}: a workers target has no workspace; its tasks are "
                    "claimed by workers (drop the key, or workers: true)"
                )
        elif body.get("template") is None:
            raise ValueError(
                f"{at}.template: missing; a target names the template it runs (or is workers: true)"
            )
        codebases = body.get("codebases") or []
        if isinstance(codebases, str):
            codebases = [codebases]
        if not isinstance(codebases, list):
            raise ValueError(f"{at}.codebases: expected a list of codebase ids")
        if len(codebases) > MAX_CODEBASES:
            raise ValueError(f"{at}.codebases: {len(codebases)} ids; at most {MAX_CODEBASES}")
        preset = body.get("preset")
        found[name] = Target(
            name=name,
            template=None if workers else _label(body["template"], f"{at}.template"),
            preset=None if preset is None else _label(preset, f"{at}.preset"),
            max_concurrent=parse_limit(body.get("max_concurrent"), f"{at}.max_concurrent"),
            codebases=tuple(dict.fromkeys(_codebase(c, f"{at}.codebases") for c in codebases)),
            workers=workers,
        )
    return found


def limits_of(targets: Mapping[str, Target]) -> dict[str, int]:
    """max_concurrent by target name, for the targets that have one."""
    return {n: t.max_concurrent for n, t in targets.items() if t.max_concurrent is not None}


@dataclass(frozen=True)
class Route:
    """Where a new task goes: a target, or none (its codebase unserved, or not routed)."""

    target: Target | None = None
    unserved: bool = False  # it named a codebase no target serves: it waits


def serving(targets: Mapping[str, Target], codebase: str) -> list[Target]:
    """The targets registered for `codebase`, in config order."""
    return [t for t in targets.values() if codebase in t.codebases]


def route(
    targets: Mapping[str, Target],
    target: str | None,
    codebase: str | None,
    load: Mapping[str, int] | None = None,
) -> Route:
    """The route of a task created with `--target` and/or `--codebase`.

    A named target wins (its codebase is kept as given). A codebase goes to the least
    loaded (`load`: live and waiting tasks by target) of the targets serving it, the
    first in config order on a tie; none serving it: the task waits.
    """
    if target is not None:
        found = targets.get(target)
        if found is None:
            known = ", ".join(sorted(targets)) or "none are configured"
            raise ParameterError(
                f"Unknown target {target[:64]!r} (targets: {known})",
                hint="list them with: dockyard target list",
            )
        return Route(found)
    if codebase is None:
        return Route()
    candidates = serving(targets, codebase)
    if not candidates:
        return Route(unserved=True)
    counts = load or {}
    order = {t.name: i for i, t in enumerate(candidates)}
    best = min(candidates, key=lambda t: (counts.get(t.name, 0), order[t.name]))
    return Route(best)


def template_and_preset(
    chosen: Route, template: str | None, preset: str | None
) -> tuple[str | None, str | None]:
    """What the task runs: an explicit --template wins (with --preset, or the template's
    default preset; the target's preset belongs to the target's template); otherwise the
    target's template with --preset, else the target's preset."""
    if template is not None or chosen.target is None or chosen.target.template is None:
        return template, preset
    return chosen.target.template, preset if preset is not None else chosen.target.preset
