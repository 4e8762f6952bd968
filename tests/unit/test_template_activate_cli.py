"""`dockyard template activate` and `template versions` against the REAL server (fake
backend): an admin goes from one pushed version to another and back, a member is refused
with a hint, unknown names and versions are 404s that say what exists, and hostile
references are refused without reaching the file system."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from cli.main import cli as dockyard
from provisioner.templating.push import pack_folder
from tests.fake_engine import Harness, bridge_cache, harness_at
from tests.polling import HTTP_TIMEOUT
from tests.serving import admin_env, admin_headers, serve
from tests.variants import write_scripted_variant

__all__ = ["bridge_cache"]


class Site:
    """The served engine; `dockyard ARGS` as its admin (or with another token)."""

    def __init__(self, h: Harness, url: str, cli_home: Path) -> None:
        self.h = h
        self.url = url
        self.env = {**admin_env(url, h.home), "DOCKYARD_HOME": str(cli_home)}
        self.versions: dict[str, str] = {}  # label -> version hash

    def __call__(self, *args: str, token: str | None = None) -> Result:
        env = {**self.env, "DOCKYARD_TOKEN": token} if token is not None else self.env
        return CliRunner().invoke(dockyard, list(args), env=env)

    def active(self) -> str:
        return self.h.engine.catalog.get("demo").version


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, bridge_cache: Path) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("tpl-activate")
    with harness_at(root / "home", bridge_cache) as h, serve(h.engine, h.home) as url:
        s = Site(h, url, root / "cli-home")
        headers = {**admin_headers(h.home), "content-type": "application/gzip"}
        for label in ("first", "second"):
            folder = write_scripted_variant(root / label, "demo", description=f"the {label}")
            pushed = httpx.post(
                f"{url}/api/dockyard/v1/templates",
                params={"label": label},
                content=pack_folder(folder),
                headers=headers,
                timeout=60,
            )
            assert pushed.status_code == 201, pushed.text
            s.versions[label] = pushed.json()["version"]
        yield s


@pytest.fixture
def run(site: Site) -> Site:
    """The site with the second version active, as the module's setup left it."""
    if site.active() != site.versions["second"]:
        assert site("template", "activate", "demo", "second").exit_code == 0
    return site


def member_token(site: Site) -> str:
    if site.h.store.user("bob") is None:
        site.h.store.create_user("bob", "member")
    token, _ = site.h.store.create_token("bob", "laptop", None)
    return str(token)


def test_activate_by_prefix_then_back_by_label(run: Site) -> None:
    first, second = run.versions["first"], run.versions["second"]
    listed = run("template", "versions", "demo")
    assert listed.exit_code == 0, listed.output
    assert f"* {second}" in listed.stdout and f"  {first}" in listed.stdout

    result = run("template", "activate", "demo", first[:10])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"Activated template demo version {first} (first)\n"
        "New tasks get it; running tasks keep the version they were created from.\n"
        f"It replaces version {second}: dockyard template activate demo {second} goes back.\n"
    )
    assert run.active() == first
    assert run.h.engine.catalog.get("demo").config.description == "the first"
    assert f"* {first}" in run("template", "versions", "demo").stdout
    audit = [e for e in run.h.store.audit_entries() if e["action"] == "template.activate"]
    assert audit[-1]["target"] == f"demo@{first}"

    # a new task gets the activated version
    created = run("task", "create", "-q", "-t", "demo", "--param=work_seconds=0.05", "hello")
    assert created.exit_code == 0, created.output
    task_id = created.stdout.strip()
    assert run.h.store.get(task_id).template_version == first
    run.h.engine.delete(task_id)

    back = run("template", "activate", "demo", "second")
    assert back.exit_code == 0, back.output
    assert back.stdout.startswith(f"Activated template demo version {second} (second)\n")
    assert run.active() == second


def test_activating_the_active_version_says_so(run: Site) -> None:
    second = run.versions["second"]
    result = run("template", "activate", "demo", second)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Template demo version {second} (second) is active (it already was)\n"


def test_json_output_is_the_servers_answer(run: Site) -> None:
    result = run("template", "activate", "demo", "first", "-o", "json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["name"], answer["version"], answer["label"]) == (
        "demo",
        run.versions["first"],
        "first",
    )


def test_a_member_is_refused_with_a_hint(run: Site) -> None:
    result = run("template", "activate", "demo", "first", token=member_token(run))
    assert result.exit_code == 1
    assert result.stderr == (
        "error: Only an admin may do this\n"
        "hint: only an admin may activate a template version; ask one to run: "
        "dockyard template activate demo first\n"
    )
    assert run.active() == run.versions["second"]
    # listing is open to members, with the active version marked
    listed = run("template", "versions", "demo", token=member_token(run))
    assert listed.exit_code == 0 and f"* {run.versions['second']}" in listed.stdout


def test_an_unknown_template_or_version_is_a_404_that_says_what_exists(run: Site) -> None:
    result = run("template", "activate", "nope", "first")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: Unknown template 'nope' (templates: ")
    assert result.stderr.endswith("\nhint: list them with: dockyard template list\n")
    assert "demo" in result.stderr

    result = run("template", "activate", "demo", "third")
    assert result.exit_code == 1
    first, second = run.versions["first"], run.versions["second"]
    assert result.stderr == (
        f"error: Version 'third' of template 'demo' is unknown (versions: {first} (first), "
        f"{second} (second))\nhint: list them with: dockyard template versions demo\n"
    )
    # the API itself: 404 for both, for an admin, with no credential 401
    api = f"{run.url}/api/dockyard/v1/templates"
    for path in ("nope/versions/first", "demo/versions/third"):
        answer = httpx.post(
            f"{api}/{path}/activate", headers=admin_headers(run.h.home), timeout=HTTP_TIMEOUT
        )
        assert answer.status_code == 404, answer.text
        assert answer.json()["hint"].startswith("list them with: dockyard template")
    assert (
        httpx.post(f"{api}/demo/versions/first/activate", timeout=HTTP_TIMEOUT).status_code == 401
    )
    assert run.active() == second


@pytest.mark.parametrize(
    "name, version",
    [
        ("demo", ".."),
        ("demo", "../../../etc/passwd"),
        ("..", "first"),
        ("demo", "$(touch /tmp/pwned-tplcli); `id`"),
        ("demo", "first\nsecond"),
        ("demo", "first\x1b[2J"),
        ("demo", "x" * 5000),
        ("demo\x00", "first"),
        ("demo", ""),
    ],
)
def test_hostile_references_are_refused_cleanly(run: Site, name: str, version: str) -> None:
    result = run("template", "activate", name, version)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.stderr.startswith(("error: ", "Usage: "))
    assert "\x1b" not in result.stderr  # a control character is never echoed raw
    assert run.active() == run.versions["second"]
    assert not Path("/tmp/pwned-tplcli").exists()


def test_a_long_or_empty_version_is_not_echoed_back_whole(run: Site) -> None:
    result = run("template", "activate", "demo", "y" * 5000)
    assert result.exit_code == 1 and len(result.stderr) < 1000, result.stderr
    result = run("template", "activate", "demo", " ")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: Give the version to activate: a hash, a unique prefix of one, or a label\n"
        "hint: list them with: dockyard template versions demo\n"
    )


def test_the_folder_on_disk_is_a_version_to_go_back_to(run: Site, tmp_path: Path) -> None:
    """A template on the search path, then a push of another version of it: the folder's
    version is still listed, and activating it goes back to it."""
    h = run.h
    h.add_scripted_variant("ondisk", description="from the folder")
    disk = h.engine.catalog.get("ondisk").version
    listed = run("template", "versions", "ondisk")
    assert f"* {disk}" in listed.stdout and "on disk" in listed.stdout
    again = run("template", "activate", "ondisk", disk[:8])
    assert again.stdout == f"Template ondisk version {disk} is active (it already was)\n"
    assert h.engine.catalog.versions is not None
    assert h.engine.catalog.versions.versions("ondisk") == []  # nothing stored for it

    folder = write_scripted_variant(tmp_path, "ondisk", description="pushed over it")
    headers = {**admin_headers(h.home), "content-type": "application/gzip"}
    pushed = httpx.post(
        f"{run.url}/api/dockyard/v1/templates",
        content=pack_folder(folder),
        headers=headers,
        timeout=HTTP_TIMEOUT,
    )
    assert pushed.status_code == 201, pushed.text
    assert h.engine.catalog.get("ondisk").config.description == "pushed over it"
    listed = run("template", "versions", "ondisk")
    assert f"  {disk}" in listed.stdout and f"* {pushed.json()['version']}" in listed.stdout

    back = run("template", "activate", "ondisk", disk[:8])
    assert back.exit_code == 0, back.output
    assert back.stdout.startswith(f"Activated template ondisk version {disk}\n")
    assert h.engine.catalog.get("ondisk").config.description == "from the folder"
    assert f"* {disk}" in run("template", "versions", "ondisk").stdout


def test_no_credential_says_how_to_log_in(run: Site) -> None:
    result = run("template", "activate", "demo", "first", token="dy_" + "x" * 43)
    assert result.exit_code == 1
    assert "hint: log in with: dockyard login" in result.stderr
    assert run.active() == run.versions["second"]
