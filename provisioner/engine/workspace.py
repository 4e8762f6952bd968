"""Turning a task into what a backend needs: its rendered spec and its bridge bundle."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from provisioner.backends.base import BRIDGE_DIR, BRIDGE_PORT, BridgeBundle
from provisioner.bridge.package import build_zipapp
from provisioner.bridge.runtime.config import BridgeConfig, Profile, config_document
from provisioner.gitwork.scripts import clone_script, credential_helper
from provisioner.gitwork.ssh import ssh_command
from provisioner.gitwork.urls import is_ssh_url, redact_url, task_branch
from provisioner.images import recipes
from provisioner.model import Task
from provisioner.placement import ON_DRAIN, ON_DRAIN_DEFAULT
from provisioner.spec import IMAGE_FROM, WorkspaceSpec
from provisioner.templating.catalog import Catalog, Template
from provisioner.templating.params import REDACTED
from provisioner.templating.render import render_workspace

IMAGE_OF_TEMPLATE = "template:"
# the task policy's record of the lender template (and version) whose image it borrows
BRIDGE_STATE_DIR = f"{recipes.AGENT_HOME}/.dockyard/bridge"
# the task policy's mark of a task cloned from its `repo` (its work is in git)
REPO_POLICY = "repo"


def spec_for(catalog: Catalog, task: Task, secrets: dict[str, Any] | None = None) -> WorkspaceSpec:
    """Render the version the task pinned with the parameters resolved at its creation."""
    template = catalog.get(task.template, task.template_version)
    spec = render_workspace(template, None, {**task.resolved, **(secrets or {})})
    return with_borrowed_image(catalog, spec, task.policy.get(IMAGE_FROM))


def lender_of(spec: WorkspaceSpec) -> str | None:
    """The template whose image `spec` borrows (`workspace.image: template:NAME`)."""
    if not spec.image or not spec.image.startswith(IMAGE_OF_TEMPLATE):
        return None
    return spec.image.removeprefix(IMAGE_OF_TEMPLATE)


def with_borrowed_image(
    catalog: Catalog, spec: WorkspaceSpec, pinned: dict[str, str] | None = None
) -> WorkspaceSpec:
    """`workspace.image: template:NAME` builds NAME's image instead of a copy of its files:
    the version of NAME the task pinned (`pinned`, from task_policy), else NAME's current
    one (a task from before lenders were pinned)."""
    name = lender_of(spec)
    if name is None:
        return spec
    version = pinned.get("version") if pinned and pinned.get("template") == name else None
    lender = catalog.get(name, version)
    lent = render_workspace(lender, lender.default_preset(), {})
    if lent.build is None:
        return replace(spec, image=lent.image)
    return replace(spec, image=None, build=lent.build)


def lender_pin(catalog: Catalog, spec: WorkspaceSpec) -> dict[str, str] | None:
    """The current version of the template whose image `spec` borrows, if it borrows."""
    lender = _lender(catalog, spec)
    return None if lender is None else {"template": lender.name, "version": lender.version}


def _lender(catalog: Catalog, spec: WorkspaceSpec) -> Template | None:
    name = lender_of(spec)
    return None if name is None else catalog.get(name)


def task_policy(catalog: Catalog, spec: WorkspaceSpec) -> dict[str, Any]:
    """What a new task keeps of its rendered spec besides its parameters: the lifecycle,
    the backend, and the version of a template whose image it borrows, pinned (and stored)
    like its own, so a change to the lender never changes the task's image."""
    policy: dict[str, Any] = {**spec.lifecycle.model_dump(), "backend": spec.backend}
    if spec.clones_repo:
        policy[REPO_POLICY] = True  # its work is in git: checkpoints, diff, pull, push
    # what `task exec`/`shell`/`cp` and previews need of the template, pinned like the rest
    policy["workdir"] = spec.workdir
    policy["access"] = spec.access.model_dump()
    policy["apps"] = [a.model_dump() for a in spec.apps]
    if spec.placement.on_drain != ON_DRAIN_DEFAULT:
        policy[ON_DRAIN] = spec.placement.on_drain  # older tasks lack it: the default
    lender = _lender(catalog, spec)  # loaded once: what is stored is what is pinned
    if lender is not None:
        if catalog.versions is not None:
            catalog.versions.snapshot(lender)
        policy[IMAGE_FROM] = {"template": lender.name, "version": lender.version}
    return policy


def initial_prompt_id(task: Task) -> str:
    """The id of the task's first prompt, the same in the store and in the bridge."""
    return f"{task.id}-initial"


REPO_CREDENTIAL_FILE = "repo-credential"
REPO_CREDENTIAL_PATH = f"{BRIDGE_STATE_DIR}/secrets/{REPO_CREDENTIAL_FILE}"
REPO_HELPER_PATH = f"{BRIDGE_STATE_DIR}/bin/git-credential-dockyard"
REPO_SSH_KEY_FILE = "repo-ssh-key"
REPO_SSH_KEY_PATH = f"{BRIDGE_STATE_DIR}/secrets/{REPO_SSH_KEY_FILE}"
# beside the key, not among the secret files (rewritten at every start): a host key first
# seen under `ssh_accept_new` must stay the one trusted
REPO_KNOWN_HOSTS_PATH = f"{BRIDGE_STATE_DIR}/ssh/known_hosts"


def _secret_value(value: Any) -> str | None:
    return value if isinstance(value, str) and value not in ("", REDACTED) else None


def repo_setup(task: Task, spec: WorkspaceSpec) -> tuple[str | None, dict[str, str]]:
    """The setup script with the repository's clone first (when the task has a `repo`),
    and the secret files the clone needs (the token, read by git's credential helper)."""
    values = spec.parameters
    url = values.get("repo")
    if not url or not spec.clones_repo:
        return spec.setup_script, {}
    token = _secret_value(values.get("repo_credential"))
    files: dict[str, str] = {}
    helper = None
    ssh: str | None = None
    known_hosts = None
    if is_ssh_url(str(url)):
        # the key as a 0600 file git's ssh reads; the token (if any) is left for `task pr`
        key = _secret_value(values.get("repo_ssh_key"))
        if key is not None:
            files[REPO_SSH_KEY_FILE] = key
        rules = spec.repo_ssh
        text = rules.known_hosts or str(values.get("repo_known_hosts") or "")
        ssh = ssh_command(
            REPO_SSH_KEY_PATH if key is not None else None,
            REPO_KNOWN_HOSTS_PATH,
            accept_new=rules.accept_new and not text,
        )
        known_hosts = (REPO_KNOWN_HOSTS_PATH, text)
    elif token is not None:
        helper = REPO_HELPER_PATH
        files[REPO_CREDENTIAL_FILE] = token
    clone = clone_script(
        url=str(url),
        shown_url=redact_url(str(url)),
        ref=str(values.get("ref") or ""),
        depth=int(values.get("repo_depth") or 0),
        branch=task_branch(task.name),
        helper_path=helper,
        ssh_command=ssh,
        known_hosts=known_hosts,
    )
    if helper is not None:
        # the helper (no secret in it) is written by the setup itself, beside the token
        install = (
            f"mkdir -p {shlex.quote(helper.rsplit('/', 1)[0])} && printf %s "
            f"{shlex.quote(credential_helper(REPO_CREDENTIAL_PATH))} > {shlex.quote(helper)}"
            f" && chmod 0700 {shlex.quote(helper)} || exit 1\n"
        )
        clone = install + clone
    script = clone if not spec.setup_script else f"{clone}\n{spec.setup_script}"
    return script, files


def bridge_config(task: Task, spec: WorkspaceSpec) -> dict[str, object]:
    """The bridge's config document for this task's workspace (its wire form is defined
    once, beside the bridge's parser: runtime.config.config_document)."""
    profile = spec.profile
    setup_script, secret_files = repo_setup(task, spec)
    config = BridgeConfig(
        agent_command=list(spec.agent_command),
        resume_command=list(spec.resume_command) if spec.resume_command else None,
        cwd=spec.workdir,
        env=dict(spec.env),
        listen=f"0.0.0.0:{BRIDGE_PORT}",
        token_file=f"{BRIDGE_DIR}/token",
        state_dir=BRIDGE_STATE_DIR,
        # A warm workspace waits for its first prompt until a task claims it.
        initial_prompt=task.prompt if task.kind == "task" else None,
        initial_prompt_id=initial_prompt_id(task),
        setup_script=setup_script,
        secret_files=secret_files,
        # the server enforces the prompt size; the bridge reads how to drive the terminal
        profile=Profile(
            prompt_regex=profile.prompt_regex,
            quiet_ms=profile.quiet_ms,
            submit=profile.submit,
            take_timeout_s=profile.take_timeout_s,
            state_source=profile.state_source,
            prompt_last=profile.prompt_last,
        ),
        columns=120,
        rows=40,
        workspace_id=task.id,
    )
    return config_document(config)


class BridgeBundler:
    """Builds the bridge zipapp once per process and wraps it with a task's config."""

    def __init__(self, cache_dir: Path) -> None:
        self._cache_dir = cache_dir
        self._zipapp: bytes | None = None

    def bundle(self, task: Task, spec: WorkspaceSpec, secret: bool = False) -> BridgeBundle:
        """What the task's workspace needs of the bridge; `secret`: the spec carries
        secret parameter values."""
        if self._zipapp is None:
            self._zipapp = build_zipapp(self._cache_dir).read_bytes()
        config = json.dumps(bridge_config(task, spec), indent=1).encode()
        return BridgeBundle(
            zipapp=self._zipapp, config_json=config, token=task.bridge_token, secret=secret
        )
