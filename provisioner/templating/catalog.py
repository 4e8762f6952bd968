"""Finding templates and presets on their search paths and loading them with clear errors."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from provisioner import paths
from provisioner.errors import PresetNotFound, TemplateError, TemplateNotFound
from provisioner.templating.confine import check_tree
from provisioner.templating.locate import line_of
from provisioner.templating.schema import PresetConfig, TemplateConfig

if TYPE_CHECKING:
    from provisioner.templating.versions import VersionStore

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Preset:
    """A loaded preset file."""

    name: str
    template: str
    path: Path
    config: PresetConfig


@dataclass(frozen=True)
class Template:
    """A loaded template folder, with its content-hash version and its presets."""

    name: str
    path: Path
    config: TemplateConfig
    version: str
    presets: dict[str, Preset] = field(default_factory=dict)

    def default_preset(self) -> Preset | None:
        """The preset marked default, if any."""
        return next((p for p in self.presets.values() if p.config.default), None)

    def preset(self, name: str) -> Preset:
        """Look a preset up by name, case-insensitively."""
        for preset in self.presets.values():
            if preset.name.lower() == name.lower() or preset.path.stem.lower() == name.lower():
                return preset
        known = ", ".join(sorted(self.presets)) or "none"
        raise PresetNotFound(
            f"Template {self.name!r} has no preset {name!r} (presets: {known})",
            hint=f"list them with: dockyard preset list --template {self.name}",
        )


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; errors name the file and line."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise TemplateError(f"{where}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: invalid YAML: {exc}") from exc


def _validate(model: type[M], data: Any, path: Path) -> M:
    if not isinstance(data, dict):
        raise TemplateError(
            f"{path}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        text = path.read_text()
        problems = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if isinstance(p, str | int)]
            # Errors of a whole model (validators) point at the model itself.
            line = line_of(text, loc) or 1
            field = ".".join(str(part) for part in loc) or "(top level)"
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            msg = msg.removeprefix("Value error, ")
            problems.append(f"{path}:{line}: field {field}: {msg}")
        raise TemplateError("; ".join(problems)) from exc


def template_version(folder: Path) -> str:
    """Content hash of every file in the template folder: the template's version."""
    digest = hashlib.sha256()
    for file in sorted(
        p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ):
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def load_template(
    folder: Path, preset_dirs: list[Path] | None = None, version: str | None = None
) -> Template:
    """Load and validate one template folder and the presets that belong to it; `version`,
    when known (a stored snapshot is named by it), spares hashing every file."""
    manifest = folder / "template.yaml"
    if not manifest.is_file():
        raise TemplateError(f"{folder}: no template.yaml in this folder")
    check_tree(folder)  # before any file in it is read
    config = _validate(TemplateConfig, read_yaml(manifest), manifest)
    presets: dict[str, Preset] = {}
    searched = preset_dirs if preset_dirs is not None else paths.preset_search_path()
    # A template may carry its own presets (presets/*.yaml inside its folder): that is how
    # a pushed template brings them along.
    folders = [folder / "presets", *(base / config.name for base in searched)]
    for preset_folder in folders:
        for file in sorted(preset_folder.glob("*.yaml")):
            pconf = _validate(PresetConfig, read_yaml(file), file)
            name = pconf.name or file.stem
            presets[name] = Preset(name=name, template=config.name, path=file, config=pconf)
    defaults = [p.name for p in presets.values() if p.config.default]
    if len(defaults) > 1:
        raise TemplateError(
            f"template {config.name!r}: more than one default preset ({', '.join(defaults)})"
        )
    return Template(config.name, folder, config, version or template_version(folder), presets)


def _fingerprint(folders: list[Path]) -> tuple[tuple[str, int, int], ...]:
    """Every file under `folders` with its modification time and size."""
    found = []
    for base in folders:
        if base.is_dir():
            for path in base.rglob("*"):
                if "__pycache__" in path.parts:
                    continue
                try:
                    st = path.stat()
                except OSError:
                    continue  # gone meanwhile: the load that follows says so
                found.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(sorted(found))


class _LoadCache:
    """Loaded templates, reused while none of their files (or presets) changed: loading
    one parses and validates YAML and hashes every file, and the engine looks every
    template up every few seconds (warm pools)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[
            tuple[Path, tuple[Path, ...]], tuple[tuple[tuple[str, int, int], ...], Template]
        ] = {}

    def load(
        self, folder: Path, preset_dirs: list[Path] | None, version: str | None = None
    ) -> Template:
        searched = tuple(preset_dirs if preset_dirs is not None else paths.preset_search_path())
        key = (folder, searched)
        # the folder (with any presets inside it) and the preset folders (presets are
        # found by the name in template.yaml, which may differ from the folder's)
        fingerprint = _fingerprint([folder, *searched])
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] == fingerprint:
            return hit[1]
        template = load_template(folder, list(searched), version)
        with self._lock:
            self._entries[key] = (fingerprint, template)
        return template

    def forget(self, folder: Path) -> None:
        """Drop what was loaded from `folder` (a deleted version)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == folder]:
                del self._entries[key]


_LOADED = _LoadCache()


def load_cached(folder: Path, preset_dirs: list[Path], version: str) -> Template:
    """A stored version: loaded once while its files are unchanged, and never hashed (it is
    the version it was stored under; a big one was rehashed on every reconcile tick)."""
    return _LOADED.load(folder, preset_dirs, version)


def forget_cached(folder: Path) -> None:
    """Forget a stored version that was deleted."""
    _LOADED.forget(folder)


class Catalog:
    """All templates: the folders on the search path plus pushed, stored versions.

    Looked up fresh each time (unchanged files are not read again), so an edit on disk
    shows at once; a task pins the version it was created from through the version store.
    """

    def __init__(
        self,
        template_dirs: list[Path] | None = None,
        preset_dirs: list[Path] | None = None,
        versions: VersionStore | None = None,
    ) -> None:
        self._template_dirs = template_dirs
        self._preset_dirs = preset_dirs
        self.versions = versions

    def _folders(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for base in self._template_dirs or paths.template_search_path():
            if not base.is_dir():
                continue
            for folder in sorted(base.iterdir()):
                if (folder / "template.yaml").is_file():
                    # Later directories override built-ins of the same folder name.
                    found[folder.name] = folder
        return found

    def folder(self, name: str) -> Path | None:
        """The folder on the search path holding template `name`, if any."""
        return self._folders().get(name)

    def on_disk(self, name: str) -> Template | None:
        """Template `name` as its folder on the search path has it now, active or not (a
        pushed version wins over it), or None when no folder holds it."""
        folder = self.folder(name)
        return _LOADED.load(folder, self._preset_dirs) if folder is not None else None

    def names(self) -> list[str]:
        """Names of every template: on the search path or pushed."""
        pushed = self.versions.pushed_names() if self.versions else []
        return sorted(set(self._folders()) | set(pushed))

    def get(self, name: str, version: str | None = None) -> Template:
        """The active template called `name`, or the given stored version of it. A name
        with capitals (a template's `coder_name`, as Coder users know it) finds it too."""
        if name != name.lower() and name.lower() in self.names():
            name = name.lower()
        folder = self._folders().get(name)
        if version is not None:
            if folder is not None:
                current = _LOADED.load(folder, self._preset_dirs)
                if current.version.startswith(version):
                    return current
            if self.versions is None:
                raise TemplateNotFound(f"Template {name!r} has no stored versions")
            info = self.versions.resolve(name, version)
            return self.versions.load(name, info.version)
        pushed = self.versions.latest_pushed(name) if self.versions else None
        if pushed is not None and self.versions is not None:
            return self.versions.load(name, pushed.version)
        if folder is None:
            known = ", ".join(self.names()) or "none"
            raise TemplateNotFound(
                f"Unknown template {name!r} (templates: {known})",
                hint="list them with: dockyard template list",
            )
        return _LOADED.load(folder, self._preset_dirs)

    def all(self) -> list[Template]:
        """Every template's active version."""
        return [self.get(name) for name in self.names()]
