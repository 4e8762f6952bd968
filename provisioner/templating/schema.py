"""The typed shape of template.yaml and preset files (pydantic, extra fields forbidden)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from provisioner.access import RESERVED_PORTS, AccessConfig, AppConfig
from provisioner.errors import ParameterError
from provisioner.gitwork.ssh import check_known_hosts
from provisioner.spec import AgentProfile, LifecycleConfig, PlacementConfig, _Strict
from provisioner.templating.confine import relative_name

ParamType = Literal["string", "number", "integer", "bool", "list", "choice"]


class Validation(_Strict):
    """Checks beyond the type: a pattern for strings, bounds for numbers and list lengths."""

    regex: str | None = Field(None, description="The whole string value must match")
    min: float | None = Field(None, description="Smallest number (or fewest list items)")
    max: float | None = Field(None, description="Largest number (or most list items)")
    message: str | None = Field(None, description="What to tell people when a check fails")


class Parameter(_Strict):
    """One value a task can set; presets and --param fill it in."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Identifier used in Jinja")
    type: ParamType = Field("string", description="How the value is parsed and checked")
    default: Any = Field(None, description="Value when neither preset nor task sets it")
    required: bool = Field(False, description="Task creation fails unless it is set")
    description: str = Field("", description="What the parameter means, for people")
    options: list[Any] | None = Field(None, description="The only values allowed, if set")
    secret: bool = Field(False, description="Passed to the workspace, redacted everywhere else")
    validation: Validation | None = Field(None, description="Extra checks on the value")
    env: str | None = Field(
        None, description="Server environment variable a secret is read from when not given"
    )

    @model_validator(mode="after")
    def _choices_need_options(self) -> Parameter:
        if self.type == "choice" and not self.options:
            raise ValueError(f"parameter {self.name!r} is a choice but lists no options")
        return self


class BuildConfig(_Strict):
    """A workspace image built from a Dockerfile in the template folder."""

    dockerfile: str = Field("Dockerfile", description="Path of the Dockerfile (Jinja template)")

    @field_validator("dockerfile")
    @classmethod
    def _inside(cls, value: str) -> str:
        return relative_name(value, "the Dockerfile")


class Resources(_Strict):
    """Limits for the workspace container."""

    memory: str | None = Field("2g", description="Memory limit, Docker syntax (512m, 2g)")
    cpus: float | None = Field(
        2.0, gt=0, le=1024, allow_inf_nan=False, description="CPU limit in cores"
    )
    pids: int | None = Field(1024, ge=1, description="Maximum number of processes")


class WorkspaceConfig(_Strict):
    """How the workspace container is made."""

    image: str | None = Field(None, description="Existing image; `base` for Dockyard's base")
    build: BuildConfig | None = Field(None, description="Build an image from a Dockerfile")
    workdir: str = Field("/workspace", description="The agent's working directory (a volume)")
    env: dict[str, str] = Field(default_factory=dict, description="Environment for the agent")
    resources: Resources = Field(default_factory=Resources)
    placement: PlacementConfig = Field(
        default_factory=PlacementConfig, description="Where it may run (backend swarm)"
    )

    @model_validator(mode="after")
    def _one_image_source(self) -> WorkspaceConfig:
        if self.image and self.build:
            raise ValueError("set either workspace.image or workspace.build, not both")
        if not self.image and not self.build:
            self.image = "base"
        return self


class AgentConfig(_Strict):
    """The agent program the bridge runs under a terminal."""

    command: list[str] = Field(min_length=1, description="argv of the agent (Jinja per item)")
    resume_command: list[str] | None = Field(None, description="argv to continue a session")
    profile: AgentProfile = Field(default_factory=AgentProfile)


class SecurityConfig(_Strict):
    """Hardening is on by default; a template may add back a few named capabilities."""

    cap_add: list[str] = Field(
        default_factory=list, description="Linux capabilities to keep (all others dropped)"
    )


class TerraformConfig(_Strict):
    """Terraform files applied per task (backend: terraform), rendered with Jinja first."""

    dir: str = Field("terraform", description="Folder in the template with the Terraform files")
    files: list[str] = Field(
        default_factory=lambda: ["*.tf", "*.tf.json"],
        min_length=1,
        description="Glob patterns (inside dir) of the files to render and apply",
    )
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Extra Terraform variables (strings rendered by Jinja)"
    )

    @field_validator("dir")
    @classmethod
    def _dir_inside(cls, value: str) -> str:
        return relative_name(value, "the Terraform folder")

    @field_validator("files")
    @classmethod
    def _files_inside(cls, value: list[str]) -> list[str]:
        return [relative_name(pattern, "a Terraform file pattern") for pattern in value]


class RepoConfig(_Strict):
    """The repository a task's workspace starts from (the standard `repo` parameters)."""

    required: bool = Field(False, description="Task creation fails unless `repo` is given")
    default: str | None = Field(None, description="The repository URL when a task gives none")
    ref: str | None = Field(None, description="The branch, tag or commit when a task gives none")
    depth: int = Field(
        1, ge=0, le=1_000_000, description="Commits of history cloned; 0: the whole history"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Hosts repositories may come from (`*.example.com` for names under "
        "it); empty: any",
    )

    known_hosts: str | None = Field(
        None,
        max_length=65536,
        description="Host keys of ssh repositories (known_hosts lines, as `ssh-keyscan` "
        "prints them); when set, a task may not give its own repo_known_hosts",
    )
    ssh_accept_new: bool = Field(
        False,
        description="Trust an ssh host's key the first time it is seen when neither the "
        "template nor the task gives it (StrictHostKeyChecking=accept-new)",
    )

    forge: Literal["github", "gitlab"] | None = Field(
        None,
        description="Where `task pr` opens pull requests; absent: known by the host "
        "(github.com, gitlab.com)",
    )
    api_url: str | None = Field(
        None,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="The forge's REST API root (GitHub Enterprise: https://HOST/api/v3)",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not re.fullmatch(r"(\*\.)?[A-Za-z0-9][A-Za-z0-9.-]{0,252}", host):
                raise ValueError(f"allowed host {host[:80]!r} is not a host name")
        return value

    @field_validator("known_hosts")
    @classmethod
    def _known_hosts(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_known_hosts(value, "repo.known_hosts")
        except ParameterError as exc:
            raise ValueError(exc.message) from exc


# The standard parameter family every template has (unless it declares one of the names
# itself): the repository cloned into the workspace, its ref, the history depth, and
# the HTTPS token and the SSH deploy key (secrets: never stored, shown or put in the
# environment), and the ssh host's keys.
REPO_PARAMETERS = (
    "repo",
    "ref",
    "repo_depth",
    "repo_credential",
    "repo_ssh_key",
    "repo_known_hosts",
)


def repo_parameters(repo: RepoConfig) -> list[Parameter]:
    """The standard repository parameters, with the template's repo section's defaults."""
    return [
        Parameter(
            name="repo",
            default=repo.default,
            required=repo.required,
            description="Git repository (https://, ssh:// or user@host:path URL) cloned "
            "into the workspace",
            # the shape here; the URL's every part is checked in gitwork.urls
            validation=Validation(
                regex=r"(?:(?:https?|ssh)://|(?:[A-Za-z0-9_][A-Za-z0-9._-]{0,63}@)?"
                r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}:(?!:|//))[!-~]{1,2040}",
                message="an https://, ssh:// or user@host:path URL",
            ),
        ),
        Parameter(
            name="ref",
            default=repo.ref,
            description="Branch, tag or commit of the repository to start from",
            validation=Validation(
                regex=r"([A-Za-z0-9_][A-Za-z0-9._/+-]{0,199})?",
                message="a branch, tag or commit name",
            ),
        ),
        Parameter(
            name="repo_depth",
            type="integer",
            description=f"Commits of history to clone (0: all; default {repo.depth})",
            validation=Validation(min=0, max=1_000_000),
        ),
        Parameter(
            name="repo_credential",
            secret=True,
            description="HTTPS token for the repository (read by git's credential helper)",
            validation=Validation(
                regex=r"[!-~]{0,4096}", message="a token: printable characters, no spaces"
            ),
        ),
        # the shape here; the key's every line is checked in gitwork.ssh (whose errors,
        # like these, never show it)
        Parameter(
            name="repo_ssh_key",
            secret=True,
            description="SSH deploy key (the private key file's text) for an ssh repository",
            validation=Validation(
                regex=r"[\n\r -~]{0,16384}",
                message="a private key file's text: printable ASCII lines, at most 16 KiB",
            ),
        ),
        Parameter(
            name="repo_known_hosts",
            description="The ssh repository host's keys (`ssh-keyscan HOST` lines), unless "
            "the template gives them",
            validation=Validation(
                regex=r"[\n\r -~]{0,65536}",
                message="known_hosts lines: printable ASCII, at most 64 KiB",
            ),
        ),
    ]


class TemplateConfig(_Strict):
    """The whole of template.yaml."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Unique template name")
    coder_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=64,
        description="The name Coder clients know it by: `name` with capitals (Coder allows "
        "them); the Coder API shows it and every lookup by name takes it",
    )
    description: str = ""
    backend: Literal["docker", "swarm", "terraform"] = "docker"
    parameters: list[Parameter] = Field(default_factory=list)
    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    setup: str | None = Field(
        None, description="Shell script run in the workspace before the agent"
    )
    agent: AgentConfig
    claim_setup: str | None = Field(
        None, description="Shell script run in a warm workspace when a task claims it"
    )
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    terraform: TerraformConfig | None = Field(None, description="Required by backend terraform")
    repo: RepoConfig = Field(
        default_factory=RepoConfig, description="The repository parameters' rules"
    )

    # whether `repo` is the standard parameter (a template may declare its own `repo`,
    # which then means what the template says: nothing is cloned)
    _standard_repo: bool = PrivateAttr(True)

    @model_validator(mode="after")
    def _repo_parameters(self) -> TemplateConfig:
        declared = {p.name: p for p in self.parameters}
        standard = repo_parameters(self.repo)
        # a config validated again (dumped and loaded) holds the standard one: still ours
        self._standard_repo = declared.get("repo", standard[0]) == standard[0]
        self.parameters.extend(p for p in standard if p.name not in declared)
        return self

    @property
    def clones_repo(self) -> bool:
        """Whether the `repo` parameter is the standard one: a task giving it is cloned."""
        return self._standard_repo

    access: AccessConfig = Field(default_factory=AccessConfig)
    apps: list[AppConfig] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _unique_apps(self) -> TemplateConfig:
        names = [a.name for a in self.apps]
        ports = [a.port for a in self.apps]
        if len(set(names)) != len(names) or len(set(ports)) != len(ports):
            raise ValueError("apps: each name and each port may appear once")
        if any(p in RESERVED_PORTS for p in ports):
            raise ValueError(f"apps: port {sorted(RESERVED_PORTS)[0]} is the bridge's own")
        return self

    @model_validator(mode="after")
    def _coder_name_is_the_name(self) -> TemplateConfig:
        if self.coder_name is not None and self.coder_name.lower() != self.name:
            raise ValueError(
                f"coder_name {self.coder_name!r} must be the name {self.name!r} with capitals"
            )
        return self

    @model_validator(mode="after")
    def _terraform_section(self) -> TemplateConfig:
        if self.backend == "terraform" and self.terraform is None:
            raise ValueError("backend terraform needs a terraform section (its files)")
        if self.backend != "terraform" and self.terraform is not None:
            raise ValueError(f"a terraform section needs backend: terraform, not {self.backend}")
        return self

    @model_validator(mode="after")
    def _unique_parameters(self) -> TemplateConfig:
        seen: set[str] = set()
        for p in self.parameters:
            if p.name in seen:
                raise ValueError(f"parameter {p.name!r} is declared twice")
            seen.add(p.name)
        return self


class PresetConfig(_Strict):
    """A preset file: named parameter values for one template."""

    name: str | None = Field(None, description="Display name; the file name when absent")
    description: str = ""
    default: bool = Field(False, description="Used when a task names no preset")
    prebuilds: int = Field(
        0, ge=0, le=50, description="Warm workspaces of this preset kept ready to be claimed"
    )
    parameters: dict[str, Any] = Field(default_factory=dict)
