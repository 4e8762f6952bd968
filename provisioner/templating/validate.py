"""`template validate`: check a template folder thoroughly without building anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.errors import MissingParameter, ParameterError, TemplateError
from provisioner.templating.catalog import Preset, Template, load_template
from provisioner.templating.render import render_workspace


@dataclass
class Report:
    """What validation found: the template, and each preset rendered or its error."""

    template: Template
    rendered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No preset failed to render."""
        return not self.errors


def validate_template(folder: Path, preset_dirs: list[Path] | None = None) -> Report:
    """Load the schema (raises TemplateError with file:line) and render every preset."""
    template = load_template(folder, preset_dirs)
    report = Report(template)
    for preset in sorted(template.presets.values(), key=lambda p: p.name):
        try:
            left = _render_leaving_parameters(template, preset)
            note = f" (leaves {', '.join(left)} to the task)" if left else ""
            report.rendered.append(preset.name + note)
        except TemplateError as exc:
            report.errors.append(f"preset {preset.name} ({preset.path}): {exc}")
    if not template.presets:
        try:
            render_workspace(template, None, {})
            report.rendered.append("(no preset)")
        except ParameterError:
            pass  # required parameters without presets are for tasks to give
        except TemplateError as exc:
            report.errors.append(f"without a preset: {exc}")
    return report


def _render_leaving_parameters(template: Template, preset: Preset) -> list[str]:
    """Render a preset; a required parameter it leaves unset is the task's to give (as in
    Coder), so it is filled with a stand-in to check the rest. The parameters left."""
    given: dict[str, Any] = {}
    left: list[str] = []
    while True:
        try:
            render_workspace(template, preset, given)
            return left
        except MissingParameter as exc:
            if exc.name in given:
                raise
            left.append(exc.name)
            given[exc.name] = _stand_in(template, exc.name)
        except ParameterError:
            if not left:
                raise
            return left  # a stand-in the parameter's own rule refuses: checked no further


def _stand_in(template: Template, name: str) -> Any:
    param = next(p for p in template.config.parameters if p.name == name)
    if param.options:
        return param.options[0]
    return {"number": 1, "integer": 1, "bool": True, "list": ["x"]}.get(param.type, "x")
