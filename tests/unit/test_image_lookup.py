"""Finding a built template image: its tag follows from the recipes (rootfs -> base ->
template), so one Docker call finds it; what is missing is built in order. A stand-in for
Docker that records calls; nothing is built for real."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from provisioner.images import recipes
from provisioner.images.builder import ImageBuilder
from provisioner.spec import BuildSpec


class Images:
    """Docker's image store as a set of tags; records what was asked and built."""

    def __init__(self, present: set[str]) -> None:
        self.present = present
        self.asked: list[str] = []
        self.built: list[str] = []

    def image_exists(self, ref: str) -> bool:
        self.asked.append(ref)
        return ref in self.present

    def import_rootfs(
        self, tar_path: str, repository: str, tag: str, labels: dict[str, str]
    ) -> None:
        raise AssertionError("no debootstrap in this test")

    def build(
        self, context_tar: bytes, tag: str, labels: dict[str, str], on_line: Callable[[str], None]
    ) -> None:
        self.built.append(tag)
        self.present.add(tag)

    def images_with_label(self, label: str) -> list[tuple[str, list[str]]]:
        return []

    def remove_image(self, ref: str) -> None:
        pass


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BuildSpec:
    bundle = tmp_path / "ca.crt"
    bundle.write_text("a CA\n")
    monkeypatch.setenv("DOCKYARD_CA_BUNDLE", str(bundle))
    context = tmp_path / "tpl"
    context.mkdir()
    (context / "agent.py").write_text("print('hi')\n")
    return BuildSpec(dockerfile="FROM {{ base_image }}\nCOPY agent.py /\n", context_dir=context)


def tags(tmp_path: Path, build: BuildSpec) -> tuple[str, str, str]:
    """(rootfs, base, template) tags, as a first run builds them."""
    rootfs = ImageBuilder.rootfs_ref()
    images = Images({rootfs})
    template = ImageBuilder(images, tmp_path).ensure_template_image("t", build)  # type: ignore[arg-type]
    base = next(t for t in images.built if t.startswith(recipes.BASE_REPO + ":"))
    assert images.built == [base, template]
    return rootfs, base, template


def test_a_built_template_image_is_found_with_one_call(tmp_path: Path, build: BuildSpec) -> None:
    _, _, template = tags(tmp_path, build)
    images = Images({template})  # its base and root filesystem need not even be there
    found = ImageBuilder(images, tmp_path).ensure_template_image("t", build)  # type: ignore[arg-type]
    assert (found, images.asked, images.built) == (template, [template], [])


def test_what_is_missing_is_built_from_what_is_there(tmp_path: Path, build: BuildSpec) -> None:
    rootfs, base, template = tags(tmp_path, build)
    images = Images({base})
    found = ImageBuilder(images, tmp_path).ensure_template_image("t", build)  # type: ignore[arg-type]
    assert found == template and images.built == [template]
    assert rootfs not in images.asked  # the base is there: its root filesystem is not needed
    # a changed template file is a new tag, built again
    (build.context_dir / "agent.py").write_text("print('changed')\n")
    again = ImageBuilder(images, tmp_path).ensure_template_image("t", build)  # type: ignore[arg-type]
    assert again != template and images.built == [template, again]


def test_a_build_yields_the_cpu_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from provisioner.backends.docker_client import BUILD_CPU_SHARES_ENV, build_limits
    from provisioner.errors import ImageBuildError

    monkeypatch.delenv(BUILD_CPU_SHARES_ENV, raising=False)
    assert build_limits() is None
    monkeypatch.setenv(BUILD_CPU_SHARES_ENV, "64")
    assert build_limits() == {"cpushares": 64}
    for bad in ("0", "1", "-5", "64; rm -rf /", "1e3", "999999999"):
        monkeypatch.setenv(BUILD_CPU_SHARES_ENV, bad)
        with pytest.raises(ImageBuildError, match="CPU weight"):
            build_limits()
