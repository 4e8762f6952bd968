"""The doctor's probes of this machine: Docker, the disk, files, the network, the database.

Each answers one question or raises ProbeError saying why it could not; the checks
(provisioner/doctor/checks.py) judge the answers. Every probe is bounded in time: a
doctor that hangs on a dead daemon or a black-holed mirror helps nobody.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from provisioner import paths
from provisioner.errors import DockyardError
from provisioner.images import recipes

from .checks import ProbeError

TIMEOUT_S = 10
CONTAINER_TIMEOUT_S = 60
# what a workspace runs to reach a site: the base image has Python, not curl
_HTTPS_CODE = (
    "import sys, urllib.request;"
    "r = urllib.request.urlopen(sys.argv[1], timeout=20);"
    "print('HTTP', r.status)"
)
_PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class MachineProbes:
    """The probes of the machine this process runs on, with its Dockyard home."""

    def __init__(self, home: Path | None = None, database_url: str | None = None) -> None:
        self.home = paths.home_dir(home)
        self.database_url = (
            database_url
            or os.environ.get("DOCKYARD_DATABASE_URL")
            or f"sqlite:///{self.home / 'dockyard.db'}"
        )
        self._docker: Any = None
        self._info: Mapping[str, Any] | ProbeError | None = None

    # config ------------------------------------------------------------------------
    def settings(self) -> Mapping[str, Any]:
        try:
            return paths.settings(self.home)
        except DockyardError as exc:
            raise ProbeError(exc.message) from exc

    # docker ------------------------------------------------------------------------
    def docker_host(self) -> str:
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    def _client(self) -> Any:
        if self._docker is None:
            import docker

            try:
                self._docker = docker.from_env(timeout=TIMEOUT_S)
            except docker.errors.DockerException as exc:
                raise ProbeError(_short(exc)) from exc
        return self._docker

    def docker_info(self) -> Mapping[str, Any]:
        if self._info is None:  # asked by several checks: once
            try:
                self._info = dict(self._client().info())
            except ProbeError as exc:
                self._info = exc
            except Exception as exc:  # requests' and docker's errors alike: away
                self._info = ProbeError(_short(exc))
        if isinstance(self._info, ProbeError):
            raise self._info
        return self._info

    def disk_free(self, path: str) -> int:
        if not self.docker_host().startswith("unix://"):
            raise ProbeError(f"Docker is not on this machine ({self.docker_host()})")
        try:
            return shutil.disk_usage(path).free
        except OSError as exc:
            raise ProbeError(f"{path}: {exc.strerror}") from exc

    def images(self) -> list[str]:
        self.docker_info()  # Docker away: said once, by the same error
        try:
            return [tag for image in self._client().images.list() for tag in image.tags]
        except Exception as exc:
            raise ProbeError(_short(exc)) from exc

    def templates(self) -> list[tuple[str, str | None, bool]]:
        from provisioner.templating.catalog import Catalog
        from provisioner.templating.versions import VersionStore

        tags = set(self.images())
        found: list[tuple[str, str | None, bool]] = []
        try:
            catalog = Catalog(versions=VersionStore(self.home / "templates"))
            for name in catalog.names():
                workspace = catalog.get(name).config.workspace
                image = workspace.image if workspace.build is None else None
                # `template:NAME` borrows another template's image, built like it
                if image in (None, "base") or str(image).startswith("template:"):
                    found.append((name, None, True))  # built here from base when needed
                else:
                    present = image in tags or f"{image}:latest" in tags
                    found.append((name, image, present))
        except DockyardError as exc:
            raise ProbeError(exc.message) from exc
        return found

    def https_from_container(self, image: str, url: str) -> str:
        from provisioner.backends.docker import LABEL_INSTANCE, LABEL_MANAGED

        bundle = str(recipes.ca_bundle_path())
        env = {k: v for k, v in os.environ.items() if k in _PROXY_ENV}
        try:
            output = self._client().containers.run(
                image,
                ["python3", "-c", _HTTPS_CODE, url],
                remove=True,
                environment=env,
                # the bundle configured now, as the next image build would bake it in
                volumes={bundle: {"bind": recipes.IMAGE_CA_PATH, "mode": "ro"}},
                labels={
                    LABEL_MANAGED: "true",
                    LABEL_INSTANCE: self._instance(),
                    "dockyard.doctor": "https",
                },
                user=str(recipes.AGENT_UID),
                mem_limit="256m",
                stderr=True,
                stdout=True,
            )
        except Exception as exc:
            text = getattr(exc, "stderr", None) or str(exc)
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            lines = [line for line in str(text).strip().splitlines() if line.strip()]
            raise ProbeError(lines[-1][:300] if lines else _short(exc)) from exc
        return bytes(output).decode("utf-8", "replace").strip()

    def _instance(self) -> str:
        """The home's instance id if it has one (a doctor writes nothing into a home)."""
        if (self.home / "instance.json").is_file():
            return paths.instance_id(self.home)
        return "doctor"

    # programs, files, the network ----------------------------------------------------
    def which(self, program: str) -> str | None:
        return shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")

    def mirror(self) -> tuple[str, str]:
        recipe = recipes.RootfsRecipe.from_env()
        return recipe.mirror, recipe.suite

    def http_get(self, url: str) -> int:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ProbeError(_short(getattr(exc, "reason", exc))) from exc

    def ca_bundle(self) -> tuple[str, int]:
        path = recipes.ca_bundle_path()
        if not path.is_file():
            raise ProbeError(f"{path} does not exist or is not a file")
        try:
            context = ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ProbeError(f"{path} is not a PEM bundle of certificates ({exc})") from exc
        return str(path), int(context.cert_store_stats().get("x509_ca", 0))

    def terraform_version(self) -> str:
        try:
            done = subprocess.run(
                ["terraform", "version"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProbeError(_short(exc)) from exc
        if done.returncode != 0:
            raise ProbeError((done.stderr or done.stdout).strip()[:300])
        return done.stdout.strip().splitlines()[0]

    # the database --------------------------------------------------------------------
    def database(self) -> Mapping[str, Any]:
        from sqlalchemy import create_engine, inspect, make_url, text
        from sqlalchemy.exc import SQLAlchemyError

        from provisioner.store.schema import metadata

        url = make_url(self.database_url)
        shown = url.render_as_string(hide_password=True)
        found: dict[str, Any] = {"kind": url.get_backend_name(), "where": shown}
        if url.get_backend_name() == "sqlite":
            file = Path(url.database or "")
            found["where"] = str(file)
            folder = file.parent
            if not file.exists():
                if not os.access(folder, os.W_OK):
                    raise ProbeError(f"cannot create {file}: {folder} is not writable")
                found["new"] = True
                return found
            if not os.access(file, os.W_OK) or not os.access(folder, os.W_OK):
                raise ProbeError(f"{file} (or its folder, for the WAL) is not writable")
            # read-only: a doctor changes nothing, not even a new WAL file's mode
            db = create_engine(f"sqlite:///file:{file}?mode=ro&uri=true")
        else:
            args = {"connect_timeout": TIMEOUT_S} if url.get_backend_name() == "postgresql" else {}
            db = create_engine(url, connect_args=args)
        try:
            with db.connect() as conn:
                if url.get_backend_name() == "postgresql":
                    found["version"] = conn.execute(text("SHOW server_version")).scalar()
                have = inspect(conn)
                tables = set(have.get_table_names())
                missing = []
                for table in metadata.sorted_tables:
                    if table.name not in tables:
                        missing.append(table.name)
                        continue
                    columns = {c["name"] for c in have.get_columns(table.name)}
                    missing += [
                        f"{table.name}.{c.name}" for c in table.columns if c.name not in columns
                    ]
                found["missing"] = missing
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise ProbeError(f"{shown}: {reason[0] if reason else type(exc).__name__}") from exc
        except ImportError as exc:
            raise ProbeError(f"the driver for {shown} is not installed ({exc.name})") from exc
        finally:
            db.dispose()
        return found


def _short(exc: object) -> str:
    """An error as one line (Docker's and urllib's can be long)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
