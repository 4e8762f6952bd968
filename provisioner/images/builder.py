"""Building images locally (no registry): debootstrap -> docker import -> docker build.

Each image is tagged by the content hash of its recipe and reused until the recipe
changes; older tags of the same image are removed after a rebuild so disks don't fill.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from filelock import FileLock

from provisioner import paths
from provisioner.errors import ImageBuildError
from provisioner.images import recipes
from provisioner.spec import BuildSpec

ProgressFn = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class ImageClient(Protocol):
    """What building images needs of Docker (backends.docker_client.DockerClient has it):
    images build on the daemon, but know nothing of workspaces or backends."""

    def image_exists(self, ref: str) -> bool: ...

    def import_rootfs(
        self, tar_path: str, repository: str, tag: str, labels: dict[str, str]
    ) -> None: ...

    def build(
        self,
        context_tar: bytes,
        tag: str,
        labels: dict[str, str],
        on_line: Callable[[str], None],
    ) -> None: ...

    def images_with_label(self, label: str) -> list[tuple[str, list[str]]]: ...

    def remove_image(self, ref: str) -> None: ...


class ImageBuilder:
    """Ensures the base image and template images exist, building only what is missing."""

    def __init__(self, docker: ImageClient, cache: Path | None = None) -> None:
        self._docker = docker
        self._cache = cache or paths.cache_dir()

    def _lock(self, name: str) -> FileLock:
        # One lock per image across every Dockyard home on this machine.
        return FileLock(str(self._cache / f"{name}.lock"), timeout=1800)

    @staticmethod
    def rootfs_ref() -> str:
        """The tag the root filesystem image has (or will have): from its recipe alone."""
        return f"{recipes.ROOTFS_REPO}:{recipes.RootfsRecipe.from_env().digest()}"

    def ensure_rootfs(self, progress: ProgressFn = _quiet) -> str:
        """The Debian root filesystem image, built with debootstrap when missing."""
        recipe = recipes.RootfsRecipe.from_env()
        ref = self.rootfs_ref()
        if self._docker.image_exists(ref):
            return ref
        with self._lock("rootfs"):
            if self._docker.image_exists(ref):
                return ref
            if shutil.which("debootstrap") is None:
                raise ImageBuildError(
                    "debootstrap is not installed; it builds the base image",
                    hint="install it with: sudo apt-get install -y debootstrap",
                )
            progress(f"building base root filesystem {ref} with debootstrap (about a minute)")
            with tempfile.TemporaryDirectory(dir=self._cache, prefix="rootfs-") as tmp:
                target = Path(tmp) / "rootfs"
                self._run(recipe.debootstrap_argv(target), progress, "debootstrap")
                tarball = Path(tmp) / "rootfs.tar"
                self._run(["tar", "-C", str(target), "-cf", str(tarball), "."], progress, "tar")
                progress(f"importing {ref}")
                self._docker.import_rootfs(
                    str(tarball),
                    recipes.ROOTFS_REPO,
                    recipe.digest(),
                    {recipes.LABEL_IMAGE: "rootfs"},
                )
            self._prune(recipes.ROOTFS_REPO, keep=ref, kind="rootfs")
        return ref

    def ensure_base(self, progress: ProgressFn = _quiet) -> str:
        """The base image: rootfs + the trusted CA bundle + the non-root agent user."""
        ref, files = self._base_recipe()
        if self._docker.image_exists(ref):
            return ref  # so is its root filesystem, or was: it is built from it
        self.ensure_rootfs(progress)
        return self._build(ref, files, "base", recipes.BASE_REPO, progress)

    def _base_recipe(self) -> tuple[str, dict[str, bytes]]:
        """The base image's tag and build context, from the recipes alone (no Docker)."""
        rootfs = self.rootfs_ref()
        bundle_path = recipes.ca_bundle_path()
        try:
            bundle = bundle_path.read_bytes()
        except OSError as exc:
            raise ImageBuildError(
                f"cannot read the CA bundle {bundle_path}: {exc.strerror}",
                hint="point DOCKYARD_CA_BUNDLE at a PEM bundle of the CAs to trust",
            ) from exc
        dockerfile = recipes.base_dockerfile(rootfs)
        files = {"Dockerfile": dockerfile.encode(), "ca-bundle.crt": bundle}
        ref = f"{recipes.BASE_REPO}:{recipes.digest_of(rootfs, dockerfile, bundle)}"
        return ref, files

    def ensure_template_image(
        self, template: str, build: BuildSpec, progress: ProgressFn = _quiet
    ) -> str:
        """The template's image, built FROM the base image.

        Its tag follows from the base image's, which follows from the recipes: when the
        template image exists, one Docker call finds it (not one per layer of images)."""
        base, _ = self._base_recipe()
        dockerfile = build.dockerfile.replace("{{ base_image }}", base)
        files = recipes.template_context_files(build.context_dir, dockerfile, build.context_exclude)
        repo = f"{recipes.TEMPLATE_REPO_PREFIX}{template}"
        ref = f"{repo}:{recipes.digest_of(recipes.context_tar(files))}"
        if self._docker.image_exists(ref):
            return ref
        self.ensure_base(progress)
        return self._build(ref, files, "template", repo, progress)

    def ensure_image(
        self,
        image: str | None,
        template: str,
        build: BuildSpec | None,
        progress: ProgressFn = _quiet,
    ) -> str:
        """Resolve a workspace spec's image: built, the base, or an existing reference."""
        if build is not None:
            return self.ensure_template_image(template, build, progress)
        if image in (None, "base"):
            return self.ensure_base(progress)
        assert image is not None
        if not self._docker.image_exists(image):
            raise ImageBuildError(
                f"image {image!r} is not present locally and cannot be pulled here",
                hint="build it locally or use workspace.build in the template",
            )
        return image

    def _build(
        self, ref: str, files: dict[str, bytes], kind: str, repo: str, progress: ProgressFn
    ) -> str:
        if self._docker.image_exists(ref):
            return ref
        with self._lock(repo):
            if self._docker.image_exists(ref):
                return ref
            progress(f"building image {ref}")
            self._docker.build(
                recipes.context_tar(files), ref, {recipes.LABEL_IMAGE: kind}, progress
            )
            self._prune(repo, keep=ref, kind=kind)
        return ref

    def _prune(self, repo: str, keep: str, kind: str) -> None:
        for _id, tags in self._docker.images_with_label(f"{recipes.LABEL_IMAGE}={kind}"):
            for tag in tags:
                if tag.startswith(f"{repo}:") and tag != keep:
                    self._docker.remove_image(tag)

    @staticmethod
    def _run(argv: list[str], progress: ProgressFn, what: str) -> None:
        tail: collections.deque[str] = collections.deque(maxlen=20)
        try:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
            )
        except OSError as exc:
            raise ImageBuildError(f"{what} could not start: {exc}") from exc
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            progress(line)
        code = proc.wait()
        if code != 0:
            raise ImageBuildError(
                f"{what} failed with exit code {code}:\n" + "\n".join(tail),
                hint="check network access to the Debian mirror (DOCKYARD_DEBIAN_MIRROR)",
            )
