"""Pull requests (GitHub) and merge requests (GitLab) as REST requests (pure: built here,
sent by the engine). Which forge and which API come from the template's `repo:` section
(`forge`, `api_url`), else from the repository's host (github.com, gitlab.com)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from provisioner.errors import ParameterError
from provisioner.gitwork.urls import split_repo_url

FORGES = ("github", "gitlab")
KNOWN = {
    "github.com": ("github", "https://api.github.com"),
    "gitlab.com": ("gitlab", "https://gitlab.com/api/v4"),
}
MAX_TITLE = 256
MAX_BODY = 65536


@dataclass(frozen=True)
class ForgeRequest:
    """One REST call, without its credential (added when it is sent)."""

    method: str
    url: str
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Forge:
    """Where a repository's pull requests are made."""

    kind: str  # github | gitlab
    api: str  # the REST API's root, without a trailing slash
    project: str  # owner/name (GitHub), the project's path (GitLab)

    def auth_headers(self, token: str) -> dict[str, str]:
        """The token as the forge takes it."""
        if self.kind == "github":
            return {"Authorization": f"Bearer {token}"}
        return {"PRIVATE-TOKEN": token}

    def _project_url(self) -> str:
        if self.kind == "github":
            return f"{self.api}/repos/{self.project}"
        return f"{self.api}/projects/{quote(self.project, safe='')}"

    def repository(self) -> ForgeRequest:
        """GET the repository (its default branch)."""
        return ForgeRequest("GET", self._project_url(), headers=_accept(self.kind))

    def default_branch(self, answer: Any) -> str | None:
        """The default branch a repository answer names."""
        value = answer.get("default_branch") if isinstance(answer, dict) else None
        return value if isinstance(value, str) and value else None

    def open_request(self, head: str, base: str, title: str, body: str) -> ForgeRequest:
        """Open a pull (merge) request from `head` into `base`."""
        if self.kind == "github":
            payload = {"title": title, "head": head, "base": base, "body": body}
            return ForgeRequest("POST", f"{self._project_url()}/pulls", payload, _accept("github"))
        payload = {
            "title": title,
            "source_branch": head,
            "target_branch": base,
            "description": body,
        }
        return ForgeRequest("POST", f"{self._project_url()}/merge_requests", payload)

    def request_url(self, answer: Any) -> str | None:
        """The new request's web page, from the forge's answer."""
        key = "html_url" if self.kind == "github" else "web_url"
        value = answer.get(key) if isinstance(answer, dict) else None
        return (
            value if isinstance(value, str) and value.startswith(("https://", "http://")) else None
        )


def _accept(kind: str) -> dict[str, str]:
    return {"Accept": "application/vnd.github+json"} if kind == "github" else {}


def forge_for(repo_url: str, kind: str | None, api_url: str | None) -> Forge:
    """The forge of `repo_url`: the template's `forge`/`api_url`, else known by its host;
    ParameterError saying what to configure when it is neither."""
    host, path = split_repo_url(repo_url)
    host = host.lower()
    known = KNOWN.get(host)
    kind = kind or (known[0] if known else None)
    api = api_url or (known[1] if known and known[0] == kind else None)
    if kind not in FORGES or not api:
        raise ParameterError(
            f"Dockyard does not know which forge serves {host}",
            hint="set repo.forge (github or gitlab) and repo.api_url in the template",
        )
    project = path.strip("/").removesuffix(".git")
    if not project or "/" not in project:
        raise ParameterError(f"{repo_url} names no owner/repository path")
    return Forge(kind=kind, api=api.rstrip("/"), project=project)


def check_title(title: str, body: str) -> None:
    """Bounds of what a pull request carries."""
    if not title.strip() or len(title) > MAX_TITLE:
        raise ParameterError(f"a pull request title holds 1 to {MAX_TITLE} characters")
    if len(body) > MAX_BODY:
        raise ParameterError(f"a pull request body holds at most {MAX_BODY} characters")
