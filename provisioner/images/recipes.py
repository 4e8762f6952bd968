"""What goes into the images, and the content hashes that tag them (pure)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE_CA_PATH = "/etc/ssl/certs/ca-certificates.crt"
AGENT_UID = 1000
AGENT_USER = "agent"
AGENT_HOME = "/home/agent"

ROOTFS_REPO = "dockyard-rootfs"
BASE_REPO = "dockyard-base"
TEMPLATE_REPO_PREFIX = "dockyard-tpl-"

LABEL_IMAGE = "dockyard.image"  # rootfs | base | template


@dataclass(frozen=True)
class RootfsRecipe:
    """A Debian root filesystem made by debootstrap."""

    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    variant: str = "minbase"
    packages: tuple[str, ...] = ("python3", "git", "ca-certificates", "procps")

    @classmethod
    def from_env(cls) -> RootfsRecipe:
        """The default recipe, with the mirror and suite overridable for other networks."""
        return cls(
            suite=os.environ.get("DOCKYARD_DEBIAN_SUITE", cls.suite),
            mirror=os.environ.get("DOCKYARD_DEBIAN_MIRROR", cls.mirror),
        )

    def digest(self) -> str:
        """Content hash of the recipe: the rootfs image's tag."""
        text = f"{self.suite}|{self.mirror}|{self.variant}|{','.join(sorted(self.packages))}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def debootstrap_argv(self, target: Path) -> list[str]:
        """The debootstrap command line."""
        return [
            "debootstrap",
            f"--variant={self.variant}",
            f"--include={','.join(self.packages)}",
            self.suite,
            str(target),
            self.mirror,
        ]


def ca_bundle_path() -> Path:
    """The CA bundle images trust: DOCKYARD_CA_BUNDLE, else the host's system bundle."""
    return Path(os.environ.get("DOCKYARD_CA_BUNDLE") or SYSTEM_CA_BUNDLE)


# Every client we expect inside a workspace reads one of these; all point at the bundle,
# because registries here (and at many companies) sit behind a TLS-inspecting proxy.
CA_ENV = {
    "SSL_CERT_FILE": IMAGE_CA_PATH,
    "REQUESTS_CA_BUNDLE": IMAGE_CA_PATH,
    "PIP_CERT": IMAGE_CA_PATH,
    "CURL_CA_BUNDLE": IMAGE_CA_PATH,
    "NODE_EXTRA_CA_CERTS": IMAGE_CA_PATH,
    "GIT_SSL_CAINFO": IMAGE_CA_PATH,
}


def base_dockerfile(rootfs_ref: str) -> str:
    """The base layer: the host's CA bundle, the non-root agent user, the workspace dir."""
    env = " \\\n    ".join(f"{k}={v}" for k, v in CA_ENV.items())
    return f"""FROM {rootfs_ref}
COPY ca-bundle.crt {IMAGE_CA_PATH}
ENV {env} \\
    LANG=C.UTF-8 \\
    HOME={AGENT_HOME}
RUN useradd --create-home --home-dir {AGENT_HOME} --uid {AGENT_UID} \\
    --shell /bin/bash {AGENT_USER} \\
 && mkdir -p /workspace {AGENT_HOME}/.dockyard /opt/dockyard \\
 && chown {AGENT_UID}:{AGENT_UID} /workspace {AGENT_HOME}/.dockyard /opt/dockyard
WORKDIR /workspace
"""


def digest_of(*parts: bytes | str) -> str:
    """A short content hash of the given parts, order-sensitive."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def context_tar(files: dict[str, bytes]) -> bytes:
    """An in-memory build context (name -> content) with fixed metadata, so it hashes stably."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def template_context_files(
    context_dir: Path, dockerfile: str, exclude: tuple[str, ...]
) -> dict[str, bytes]:
    """The template folder's files plus the rendered Dockerfile, as a build context."""
    files: dict[str, bytes] = {}
    for path in sorted(context_dir.rglob("*")):
        rel = path.relative_to(context_dir).as_posix()
        # Presets never reach the image: changing one must not cause a rebuild.
        skipped = "__pycache__" in path.parts or rel.split("/")[0] == "presets"
        if path.is_file() and rel not in exclude and not skipped:
            files[rel] = path.read_bytes()
    files["Dockerfile"] = dockerfile.encode()
    return files
