"""Rendering a template with its parameters into a typed WorkspaceSpec (pure: no I/O but reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import TemplateError as JinjaError
from jinja2 import UndefinedError

from provisioner.errors import TemplateError
from provisioner.spec import BuildSpec, RepoSsh, TerraformSpec, WorkspaceSpec
from provisioner.templating.catalog import Preset, Template
from provisioner.templating.confine import confined
from provisioner.templating.params import resolve_parameters
from provisioner.templating.resources import check_resources
from provisioner.templating.sandbox import make_environment, render_bounded

_ENV = make_environment(keep_trailing_newline=True)


def render_string(text: str, context: dict[str, Any], where: str) -> str:
    """Render one Jinja string; undefined names and syntax errors say where they are."""
    try:
        return render_bounded(_ENV, text, context, where)
    except UndefinedError as exc:
        raise TemplateError(f"{where}: {exc.message} (is the parameter declared?)") from exc
    except JinjaError as exc:
        line = getattr(exc, "lineno", None)
        suffix = f" (line {line})" if line else ""
        raise TemplateError(f"{where}: template error{suffix}: {exc}") from exc


def render_workspace(
    template: Template,
    preset: Preset | None,
    overrides: dict[str, Any],
) -> WorkspaceSpec:
    """Resolve parameters and render every templated field of the template."""
    values = resolve_parameters(template, preset, overrides)
    context = {**values, "params": values, "template": {"name": template.name}}
    manifest = template.path / "template.yaml"
    ws = template.config.workspace
    agent = template.config.agent

    def r(text: str, field_name: str) -> str:
        return render_string(text, context, f"{manifest}: field {field_name}")

    build = None
    if ws.build is not None:
        field_name = f"{manifest}: field workspace.build.dockerfile"
        dockerfile_path = template.path / ws.build.dockerfile
        confined(template.path, dockerfile_path, field_name)
        try:
            raw = dockerfile_path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            # never the exception's text: it may quote the file
            raise TemplateError(f"{field_name}: cannot read {ws.build.dockerfile!r}") from exc
        # base_image stays a placeholder: it is only known once the base image is built.
        dockerfile = render_string(
            raw, {**context, "base_image": "{{ base_image }}"}, str(dockerfile_path)
        )
        build = BuildSpec(dockerfile=dockerfile, context_dir=template.path)
    memory = r(ws.resources.memory, "workspace.resources.memory") if ws.resources.memory else None
    check_resources(memory, ws.resources.cpus, ws.resources.pids, f"{manifest}: field ")
    return WorkspaceSpec(
        template=template.name,
        template_version=template.version,
        preset=preset.name if preset else None,
        backend=template.config.backend,
        parameters=values,
        clones_repo=template.config.clones_repo and bool(values.get("repo")),
        repo_ssh=RepoSsh(
            known_hosts=template.config.repo.known_hosts or "",
            accept_new=template.config.repo.ssh_accept_new,
        ),
        image=r(ws.image, "workspace.image") if ws.image else None,
        build=build,
        workdir=r(ws.workdir, "workspace.workdir"),
        env={k: r(v, f"workspace.env.{k}") for k, v in ws.env.items()},
        memory=memory,
        cpus=ws.resources.cpus,
        pids=ws.resources.pids,
        agent_command=[r(a, f"agent.command[{i}]") for i, a in enumerate(agent.command)],
        resume_command=(
            [r(a, f"agent.resume_command[{i}]") for i, a in enumerate(agent.resume_command)]
            if agent.resume_command
            else None
        ),
        profile=agent.profile,
        setup_script=r(template.config.setup, "setup") if template.config.setup else None,
        lifecycle=template.config.lifecycle,
        cap_add=tuple(template.config.security.cap_add),
        terraform=render_terraform(template, context),
        access=template.config.access,
        apps=tuple(template.config.apps),
        placement=ws.placement,
    )


def render_terraform(template: Template, context: dict[str, Any]) -> TerraformSpec | None:
    """Render the files matching the terraform section's globs, and its variables."""
    config = template.config.terraform
    if config is None:
        return None
    manifest = template.path / "template.yaml"
    where = f"{manifest}: field terraform"
    folder = template.path / config.dir
    confined(template.path, folder, f"{where}.dir")
    files: dict[str, str] = {}
    for pattern in config.files:
        for path in sorted(folder.glob(pattern)):
            rel = path.relative_to(folder).as_posix()
            confined(template.path, path, f"{where}.files")
            if path.is_file() and rel not in files:
                files[rel] = render_string(_read_text(path, where), context, str(path))
    if not files:
        raise TemplateError(
            f"{manifest}: field terraform: no file in {folder} matches {', '.join(config.files)}"
        )
    variables = {
        key: render_string(value, context, f"{manifest}: field terraform.variables.{key}")
        if isinstance(value, str)
        else value
        for key, value in config.variables.items()
    }
    return TerraformSpec(source_dir=folder, files=files, variables=variables)


def _read_text(path: Path, where: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{where}: cannot read {path.name!r} as text") from exc


def select_preset(template: Template, name: str | None) -> Preset | None:
    """The named preset, else the template's default preset, else none."""
    if name:
        return template.preset(name)
    return template.default_preset()
