"""`template validate`: check a template folder thoroughly without building anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from provisioner.errors import ParameterError, TemplateError
from provisioner.templating.catalog import Template, load_template
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
            render_workspace(template, preset, {})
            report.rendered.append(preset.name)
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
