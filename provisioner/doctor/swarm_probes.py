"""The doctor's probes of the Swarm backend: the manager's API, the registry's /v2/, a
push from this server's Docker engine and pulls on the nodes with a known endpoint.

Each answers one question or raises ProbeError; swarm_checks.py judges. Bounded in time
like probes.py. The push leaves one empty image, `REGISTRY/dockyard/doctor-probe:latest`
(no layer content), in the registry; the local tag and the nodes' pulled copies are
removed.
"""

from __future__ import annotations

import contextlib
import io
import re
import ssl
import tarfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from provisioner.doctor.checks import ProbeError
from provisioner.doctor.probes import _short
from provisioner.placement import NodeView

TIMEOUT_S = 10
PULL_TIMEOUT_S = 60
PROBE_REPO = "dockyard/doctor-probe"
# what a task's error says when its node could not get the image
_PULL_ERROR = re.compile(r"no such image|pull|manifest|registry|image .* not found", re.I)


class SwarmMachineProbes:
    """The Swarm probes, with the server's config.yaml (its `swarm:` section)."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self._settings = settings
        self._api: Any = None
        self._answers: dict[str, Any] = {}

    def _once(self, key: str, ask: Any) -> Any:
        """Ask once; several checks share an answer (or the same ProbeError)."""
        if key not in self._answers:
            try:
                self._answers[key] = ask()
            except ProbeError as exc:
                self._answers[key] = exc
        answer = self._answers[key]
        if isinstance(answer, ProbeError):
            raise answer
        return answer

    def config(self) -> Mapping[str, Any]:
        def read() -> Mapping[str, Any]:
            from provisioner.backends.swarm import SwarmSettings

            section = self._settings.get("swarm")
            if section is None:
                raise ProbeError("backend: swarm is set but config.yaml has no swarm: section")
            try:
                s = SwarmSettings.from_config(section)
            except ValueError as exc:
                raise ProbeError(str(exc)) from exc
            return {
                "manager": s.manager,
                "registry": s.registry,
                "network": s.network,
                "node_endpoints": dict(s.node_endpoints),
            }

        result: Mapping[str, Any] = self._once("config", read)
        return result

    def _manager_api(self) -> Any:
        if self._api is None:
            import docker

            try:
                self._api = docker.APIClient(
                    base_url=self.config()["manager"], version="auto", timeout=TIMEOUT_S
                )
            except docker.errors.DockerException as exc:
                raise ProbeError(_short(exc)) from exc
        return self._api

    def manager(self) -> Mapping[str, Any]:
        def ask() -> Mapping[str, Any]:
            try:
                info = self._manager_api().info()
            except ProbeError:
                raise
            except Exception as exc:
                raise ProbeError(_short(exc)) from exc
            swarm: Mapping[str, Any] = info.get("Swarm") or {}
            return swarm

        result: Mapping[str, Any] = self._once("manager", ask)
        return result

    def nodes(self) -> list[NodeView]:
        def ask() -> list[NodeView]:
            from provisioner.backends.swarm_client import _node_view

            if not self.manager().get("ControlAvailable"):
                raise ProbeError("the engine at swarm.manager is not a manager")
            try:
                return [_node_view(n) for n in self._manager_api().nodes()]
            except Exception as exc:
                raise ProbeError(_short(exc)) from exc

        result: list[NodeView] = self._once("nodes", ask)
        return result

    def network(self, name: str) -> Mapping[str, Any] | None:
        self.manager()  # away: said once, by the same error
        try:
            found = self._manager_api().networks(names=[name])
        except Exception as exc:
            raise ProbeError(_short(exc)) from exc
        exact: list[Mapping[str, Any]] = [n for n in found if n.get("Name") == name]
        return exact[0] if exact else None

    def registry(self, registry: str) -> tuple[str, int]:
        def ask() -> tuple[str, int]:
            # HTTPS first, as Docker does for a name that is not loopback; a registry
            # serving plain HTTP answers the TLS hello with garbage, then HTTP works
            reasons = []
            for scheme in ("https", "http"):
                url = f"{scheme}://{registry}/v2/"
                try:
                    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as reply:
                        return url, int(reply.status)
                except urllib.error.HTTPError as exc:
                    return url, int(exc.code)
                except (urllib.error.URLError, OSError, ssl.SSLError, ValueError) as exc:
                    reasons.append(f"{scheme}: {_short(getattr(exc, 'reason', exc))}")
            raise ProbeError("; ".join(reasons))

        result: tuple[str, int] = self._once(f"registry {registry}", ask)
        return result

    def push(self, registry: str) -> str:
        def ask() -> str:
            import docker

            from provisioner.backends.swarm_client import Pusher
            from provisioner.errors import DockyardError

            ref = f"{registry}/{PROBE_REPO}:latest"
            empty = io.BytesIO()
            with tarfile.open(fileobj=empty, mode="w"):
                pass  # an image of no files: nothing to upload but its config
            try:
                local = docker.from_env(timeout=TIMEOUT_S)
            except docker.errors.DockerException as exc:
                raise ProbeError(f"Docker here: {_short(exc)}") from exc
            pusher = Pusher()
            try:
                local.api.import_image_from_data(
                    empty.getvalue(),
                    repository=ref.rpartition(":")[0],
                    tag="latest",
                    changes=["LABEL dockyard.doctor=probe"],
                )
                pusher.push(ref, lambda _line: None)
            except DockyardError as exc:
                raise ProbeError(exc.message) from exc
            except Exception as exc:
                raise ProbeError(_short(exc)) from exc
            finally:
                with contextlib.suppress(Exception):
                    local.api.remove_image(ref)
                local.close()
                pusher.close()
            return ref

        result: str = self._once(f"push {registry}", ask)
        return result

    def pull(self, node: str, endpoint: str, ref: str) -> None:
        import docker

        repository, _, tag = ref.rpartition(":")
        try:
            client = docker.APIClient(base_url=endpoint, version="auto", timeout=PULL_TIMEOUT_S)
        except docker.errors.DockerException as exc:
            raise ProbeError(f"its Docker API {endpoint}: {_short(exc)}") from exc
        try:
            client.pull(repository, tag=tag)
        except docker.errors.APIError as exc:
            raise ProbeError(_short(exc.explanation or exc)) from exc
        except Exception as exc:
            raise ProbeError(f"its Docker API {endpoint}: {_short(exc)}") from exc
        finally:
            with contextlib.suppress(Exception):
                client.remove_image(ref)
            client.close()

    def pull_errors(self) -> list[tuple[str, str]]:
        names = {n.id: n.hostname for n in self.nodes()}
        try:
            tasks = self._manager_api().tasks()
        except Exception as exc:
            raise ProbeError(_short(exc)) from exc
        newest: dict[str, tuple[str, str]] = {}  # node -> (time, error or "" if it ran)
        for task in tasks:
            status = task.get("Status") or {}
            error = str(status.get("Err") or "")
            node = names.get(task.get("NodeID") or "", "")
            state = status.get("State")
            if state in ("rejected", "failed") and _PULL_ERROR.search(error):
                found = error[:300]
            elif state in ("running", "complete") or (state == "shutdown" and not error):
                found = ""  # a container ran there since: whatever failed before is fixed
            else:
                continue
            at = str(task.get("UpdatedAt") or "")
            if node and at > newest.get(node, ("", ""))[0]:
                newest[node] = (at, found)
        return [(node, error) for node, (_, error) in sorted(newest.items()) if error]

    def close(self) -> None:
        if self._api is not None:
            with contextlib.suppress(Exception):
                self._api.close()
