"""Resolving a task's parameters: template defaults, then the preset, then overrides."""

from __future__ import annotations

import math
import re
from typing import Any

from jinja2 import TemplateError as JinjaError
from jinja2 import UndefinedError

from provisioner.errors import MissingParameter, ParameterError
from provisioner.gitwork.ssh import check_known_hosts, check_ssh_key
from provisioner.gitwork.urls import check_ref, check_repo_url, is_ssh_url
from provisioner.templating.catalog import Preset, Template
from provisioner.templating.sandbox import make_environment, render_bounded
from provisioner.templating.schema import Parameter

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}

REDACTED = "********"
# Numbers a parameter may take: beyond this no count, size or time makes sense, and up to
# it integers stay exact as floats (2**53 is about 9e15).
MAX_NUMBER = 1e15
_NUMBER_CHARS = 40
_ENV = make_environment()
# Longest part of a value an error message shows: values come from anyone creating a task.
SHOWN_CHARS = 80


def shown(param: Parameter, value: Any) -> str:
    """A value as an error message may show it: never a secret's, never a huge one."""
    if param.secret:
        return "(the secret value)"
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return "(a value too long to show)"
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def parse_number(value: Any) -> int | float | None:
    """`value` as a finite number within ±MAX_NUMBER, else None (booleans, NaN, inf,
    1e999, a 400-digit number: all would overflow or mislead whatever uses them)."""
    if isinstance(value, bool):
        return None
    number: int | float
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str) and len(value.strip()) <= _NUMBER_CHARS:
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
    else:
        return None
    if isinstance(number, float) and not math.isfinite(number):
        return None
    return number if abs(number) <= MAX_NUMBER else None


def coerce(param: Parameter, value: Any, source: str) -> Any:
    """Parse `value` as the parameter's type; `source` says where it came from, for errors."""

    def bad(expected: str) -> ParameterError:
        return ParameterError(
            f"Parameter {param.name} from {source}: expected {expected}, got {shown(param, value)}"
        )

    result: Any
    if param.type == "choice":
        # Options may be numbers or booleans: a --param string matches by its text.
        assert param.options is not None
        by_text = {str(o).lower(): o for o in param.options}
        result = by_text.get(str(value).lower(), value)
    elif param.type == "string":
        if isinstance(value, dict | list):
            raise bad("a string")
        result = "" if value is None else str(value)
    elif param.type in ("number", "integer"):
        number = parse_number(value)
        if number is None:
            kind = "a number" if param.type == "number" else "an integer"
            raise bad(f"{kind} from {-MAX_NUMBER:g} to {MAX_NUMBER:g}")
        if param.type == "integer":
            if float(number) != int(number):
                raise bad("an integer")
            result = int(number)
        else:
            result = int(number) if float(number).is_integer() else float(number)
    elif param.type == "bool":
        if isinstance(value, bool):
            result = value
        elif str(value).strip().lower() in _TRUE:
            result = True
        elif str(value).strip().lower() in _FALSE:
            result = False
        else:
            raise bad("true or false")
    else:  # list
        if isinstance(value, list):
            result = value
        elif isinstance(value, str):
            result = [item.strip() for item in value.split(",") if item.strip()]
        else:
            raise bad("a list")
    if param.required and result == "":
        return result  # not given at all: the required check says so, naming who sets it
    _validate(param, result, source)
    if param.options is not None and result not in param.options:
        choices = ", ".join(str(o) for o in param.options)
        raise ParameterError(
            f"Parameter {param.name} from {source}: {shown(param, result)} is not one of: {choices}"
        )
    return result


def _validate(param: Parameter, value: Any, source: str) -> None:
    rule = param.validation
    if rule is None:
        return
    why = f" ({rule.message})" if rule.message else ""
    where = f"Parameter {param.name} from {source}"
    if rule.regex is not None and isinstance(value, str) and not re.fullmatch(rule.regex, value):
        raise ParameterError(f"{where}: {shown(param, value)} does not match {rule.regex!r}{why}")
    measure = len(value) if isinstance(value, list) else value
    if isinstance(measure, int | float) and not isinstance(measure, bool):
        what = "items" if isinstance(value, list) else "value"
        if rule.min is not None and measure < rule.min:
            raise ParameterError(
                f"{where}: {what} {measure} is below the minimum {rule.min:g}{why}"
            )
        if rule.max is not None and measure > rule.max:
            raise ParameterError(
                f"{where}: {what} {measure} is above the maximum {rule.max:g}{why}"
            )


def _render_default(param: Parameter, values: dict[str, Any], template: Template) -> Any:
    """A default may be a Jinja expression over other parameters (`{{ repo }}-work`)."""
    default = param.default
    if not isinstance(default, str) or "{" not in default:
        return default
    where = f"Default of parameter {param.name} in template {template.name}"
    try:
        return render_bounded(_ENV, default, values, where)
    except UndefinedError as exc:
        raise ParameterError(
            f"{where} refers to an unknown or unset parameter: {exc.message}"
        ) from exc
    except JinjaError as exc:
        raise ParameterError(f"{where}: template error: {str(exc)[:200]}") from exc


def resolve_parameters(
    template: Template, preset: Preset | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Merge defaults < preset < overrides, check every value, and require what is required."""
    declared = {p.name: p for p in template.config.parameters}
    values: dict[str, Any] = {}
    layers: list[tuple[str, dict[str, Any]]] = []
    if preset is not None:
        layers.append((f"preset {preset.name} ({preset.path})", preset.config.parameters))
    layers.append(("--param", overrides))
    for source, layer in layers:
        for key, value in layer.items():
            if key not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise ParameterError(
                    f"Unknown parameter {key!r} from {source}; template {template.name} "
                    f"declares: {known}"
                )
            values[key] = coerce(declared[key], value, source)
    # Defaults last, in declaration order, so one may use values set above it.
    for p in template.config.parameters:
        if p.name not in values and p.default is not None:
            default = _render_default(p, values, template)
            values[p.name] = coerce(p, default, f"template {template.name} default")
    for p in template.config.parameters:
        if p.required and values.get(p.name) in (None, ""):
            setters = sorted(
                pr.name for pr in template.presets.values() if p.name in pr.config.parameters
            )
            hint = (
                f"presets that set it: {', '.join(setters)}"
                if setters
                else f"set it with --param {p.name}=VALUE"
            )
            raise MissingParameter(
                f"Required parameter not provided: {p.name}", name=p.name, hint=hint
            )
    check_repo_values(template, values)
    return values


def check_repo_values(template: Template, values: dict[str, Any]) -> None:
    """The standard repository parameters as git will take them: an http(s) or ssh URL on
    a host the template allows, a ref that is a name and never an option, and for ssh a
    deploy key and the host's key (normalized in `values`)."""
    rules = template.config.repo
    if not template.config.clones_repo:
        return  # the template's own `repo` parameter, with its own rules
    if values.get("repo"):
        check_repo_url(values["repo"], rules.allowed_hosts)
        if values.get("repo_depth") is None:
            values["repo_depth"] = rules.depth
    if isinstance(values.get("ref"), str):
        check_ref(values["ref"])
    if values.get("repo_known_hosts"):
        if rules.known_hosts:
            raise ParameterError(
                "Parameter repo_known_hosts: template "
                f"{template.name} pins the ssh host keys (repo.known_hosts); a task may not "
                "change them"
            )
        values["repo_known_hosts"] = check_known_hosts(values["repo_known_hosts"])
    if values.get("repo") and is_ssh_url(values["repo"]):
        check_ssh_values(template, values)
    # else a key is left unused and unchecked: a server-wide DOCKYARD_SECRET_REPO_SSH_KEY
    # reaches https tasks too


def check_ssh_values(template: Template, values: dict[str, Any]) -> None:
    """An ssh repository needs its deploy key (checked, its line ends fixed in `values`)
    and a way to know its host's key."""
    rules = template.config.repo
    if values.get("repo_ssh_key") not in (None, "", REDACTED):
        # a stored task's key is masked: it was checked when the task was created
        values["repo_ssh_key"] = check_ssh_key(values["repo_ssh_key"])
    if values.get("repo_ssh_key") in (None, ""):
        raise MissingParameter(
            "Parameter repo_ssh_key: an ssh repository needs a deploy key",
            name="repo_ssh_key",
            hint='give --param repo_ssh_key="$(cat KEY)" (or DOCKYARD_SECRET_REPO_SSH_KEY '
            "on the server), or clone over https:// with repo_credential",
        )
    if not (rules.known_hosts or values.get("repo_known_hosts") or rules.ssh_accept_new):
        raise MissingParameter(
            "Parameter repo_known_hosts: an ssh repository needs its host's key, and "
            f"template {template.name} neither gives it nor trusts a first-seen key",
            name="repo_known_hosts",
            hint='give --param repo_known_hosts="$(ssh-keyscan HOST)" (check it), or set '
            "repo.known_hosts (or repo.ssh_accept_new: true) in the template",
        )


def redact(template: Template, values: dict[str, Any]) -> dict[str, Any]:
    """A copy of `values` safe to store and show: secret parameters masked."""
    secret = {p.name for p in template.config.parameters if p.secret}
    return {k: (REDACTED if k in secret and v not in (None, "") else v) for k, v in values.items()}


def split_secrets(
    template: Template | None, values: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(`values` safe to store and show, the secret values to keep out of the database)
    for a recipe that makes tasks later (a schedule, a trigger). Without a template (a
    target picks it at each run) none is known not to be secret: all are kept apart."""
    if template is None:
        return {k: REDACTED for k in values}, dict(values)
    secret = {p.name for p in template.config.parameters if p.secret}
    kept = {k: v for k, v in values.items() if k in secret and v not in (None, "")}
    return redact(template, values), kept


def with_secrets(stored: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
    """The parameters a run of a recipe is made with: the stored ones with each mask
    replaced by its kept value. A mask whose value is missing (the secret file is gone)
    is left out rather than sent as the mask, so the environment or default fills it."""
    values = {k: v for k, v in stored.items() if v != REDACTED}
    values.update(kept)
    return values
