"""What a backend is asked to make: the typed workspace spec a rendered template becomes,
and the parts of a template that travel with it (the agent's profile, its lifecycle).

These are domain types shared by templating (which produces them), the engine and every
backend (which consume them), so they sit beside lifecycle.py and model.py and import
nothing from those packages. Sections: the agent and its lifecycle (pydantic, the shape
template.yaml gives them), then the spec (frozen dataclasses), with the Docker build and
the Terraform part tagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from provisioner.access import AccessConfig, AppConfig
from provisioner.durations import parse_retention
from provisioner.placement import MAX_CONSTRAINTS, check_constraint
from provisioner.prompts import MAX_PROMPT_BYTES
from provisioner.queueing import MAX_RETRIES

# The policy key of a task whose image is borrowed from another template (`template:NAME`)
IMAGE_FROM = "image_from"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- the agent and its lifecycle, as template.yaml gives them ---------------------------
class AgentProfile(_Strict):
    """How the bridge reads this agent's terminal."""

    prompt_regex: str = Field(r"^> ?$", description="Matches the cursor line when it waits")
    quiet_ms: int = Field(250, ge=10, description="Output silence before it counts as idle")
    submit: Literal["line", "paste"] = Field(
        "line", description="How a prompt is typed in: one line + Enter, or bracketed paste + Enter"
    )
    take_timeout_s: float = Field(10.0, gt=0, description="When to assume a prompt was taken")
    state_source: Literal["screen", "hooks"] = Field(
        "screen",
        description="What decides working/idle: the screen (prompt_regex, quiet_ms) or the "
        "agent's hook events (POST /dockyard/hook: prompt_submitted ... stop)",
    )
    prompt_last: bool = Field(
        False,
        description="The agent writes its prompt last and nothing after it until it gets "
        "input (no clock, spinner or redraw): the screen at the prompt after a write is idle "
        "at once, without waiting quiet_ms",
    )
    max_prompt_bytes: int = Field(
        MAX_PROMPT_BYTES,
        ge=1,
        le=MAX_PROMPT_BYTES,
        description="The largest prompt the agent takes, in UTF-8 bytes (at most 256 KiB)",
    )


class PhaseTimeouts(_Strict):
    """Seconds each startup phase may take before the task goes to error (TIMEOUT)."""

    image: float = Field(1800, gt=0, description="Building or finding the image")
    create: float = Field(120, gt=0, description="Creating volumes and the container")
    start: float = Field(60, gt=0, description="Starting the container")
    setup: float = Field(900, gt=0, description="The template's setup script")
    agent: float = Field(60, gt=0, description="Until the agent shows its input prompt")


class LifecycleConfig(_Strict):
    """How long things may take, and what happens when nobody uses the workspace."""

    timeouts: PhaseTimeouts = Field(default_factory=PhaseTimeouts)
    idle_timeout: float | None = Field(
        None, gt=0, description="Seconds idle before the task is auto-paused; never if unset"
    )
    restart: Literal["no", "unless-stopped"] = Field(
        "no", description="Docker restart policy: unless-stopped brings it back after dockerd"
    )
    retention: str | None = Field(
        None,
        description="How long a finished task's stopped workspace is kept: keep, or a "
        "duration such as 24h after which its container and volumes are removed (its logs "
        "and history stay); the server's default (keep) when unset",
    )

    @field_validator("retention")
    @classmethod
    def _check_retention(cls, value: str | None) -> str | None:
        parse_retention(value)  # a ValueError: the template's error names the field
        return value

    retries: int = Field(
        0,
        ge=0,
        le=MAX_RETRIES,
        description="Automatic retries of a task after a TRANSIENT or TIMEOUT error, with "
        "backoff; a task's own --retries wins",
    )


class PlacementConfig(_Strict):
    """Where a workspace may run on a cluster backend (swarm); the Docker backend has one
    host and ignores it."""

    constraints: list[str] = Field(
        default_factory=list,
        max_length=MAX_CONSTRAINTS,
        description="Swarm constraints every node must meet, e.g. node.labels.gpu==yes",
    )
    preferences: Literal["spread"] = Field(
        "spread", description="spread: the least loaded node that meets the constraints"
    )
    on_drain: Literal["error", "pause"] = Field(
        "error",
        description="What a drained node's workspaces become: error (the default), or "
        "pause (resumable on the same node, with its disk, once the node is active)",
    )

    @field_validator("constraints")
    @classmethod
    def _check_constraints(cls, value: list[str]) -> list[str]:
        return [check_constraint(c) for c in value]  # a ValueError names the constraint


# --- the spec a backend gets -----------------------------------------------------------
@dataclass(frozen=True)
class BuildSpec:
    """A Dockerfile to build on top of the base image; the context is the template folder."""

    dockerfile: str  # rendered text; `{{ base_image }}` is filled in at build time
    context_dir: Path
    context_exclude: tuple[str, ...] = ("template.yaml",)


@dataclass(frozen=True)
class TerraformSpec:
    """A template's Terraform files, rendered, and its extra variables (backend terraform)."""

    source_dir: Path
    files: dict[str, str]  # path relative to source_dir -> rendered text
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RepoSsh:
    """How an ssh repository's host is trusted: the template's known_hosts lines (a task's
    own come as the `repo_known_hosts` parameter), and whether a first-seen key may be."""

    known_hosts: str = ""
    accept_new: bool = False


@dataclass(frozen=True)
class WorkspaceSpec:
    """Everything a backend needs to make one task's workspace."""

    template: str
    template_version: str
    preset: str | None
    backend: str
    parameters: dict[str, Any]
    image: str | None  # an existing image, or "base" for Dockyard's base image
    build: BuildSpec | None
    workdir: str
    env: dict[str, str]
    memory: str | None
    cpus: float | None
    pids: int | None
    agent_command: list[str]
    resume_command: list[str] | None
    profile: AgentProfile
    setup_script: str | None = None
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    cap_add: tuple[str, ...] = ()
    terraform: TerraformSpec | None = None
    # the task gave the standard `repo` parameter: the setup clones it first
    clones_repo: bool = False
    repo_ssh: RepoSsh = field(default_factory=RepoSsh)
    access: AccessConfig = field(default_factory=AccessConfig)
    apps: tuple[AppConfig, ...] = ()
    placement: PlacementConfig = field(default_factory=PlacementConfig)
