"""Build the images the Docker tier uses, ahead of it: `python3 -m tests.prebuild`.

scripts/test.sh runs this in the background while the fast tier runs, so that on a fresh
machine the base image (debootstrap) and the agent images (pip and npm installs), minutes
of mostly network-bound work, overlap the fast tier instead of adding to the Docker tier.

It builds exactly what a task of each built-in template with its default preset builds
(the same Catalog, render and ImageBuilder, so the same content-hash tags), one image at
a time so the agent images share their common layers. The builder's per-image file locks
make a Docker test that needs an image still being built here wait for it, then reuse it.
A build that fails here is only reported: the Docker tier builds what is missing itself
and fails with the real error where it matters.
"""

from __future__ import annotations

import sys
import time

# In the order the Docker tier first needs them: scripted (most tests), then the agents.
TEMPLATES = ("scripted", "aider", "claude-code", "codex", "goose")
# Required parameters that do not reach any Dockerfile: any valid value builds the image.
PLACEHOLDERS = {"base_url": "http://127.0.0.1:9/v1"}


def build(name: str) -> str:
    """Build (or find) the image of template `name` with its default preset; its ref."""
    from provisioner.backends.docker_client import DockerClient
    from provisioner.images.builder import ImageBuilder
    from provisioner.templating.catalog import Catalog
    from provisioner.templating.render import render_workspace

    template = Catalog().get(name)
    required = {
        p.name: PLACEHOLDERS[p.name]
        for p in template.config.parameters
        if p.required and p.name in PLACEHOLDERS
    }
    spec = render_workspace(template, template.default_preset(), required)
    return ImageBuilder(DockerClient()).ensure_image(spec.image, spec.template, spec.build)


def main(names: list[str]) -> int:
    failed = 0
    for name in names or TEMPLATES:
        started = time.monotonic()
        try:
            ref = build(name)
        except Exception as exc:  # reported, not fatal: see the module's docstring
            failed += 1
            print(f"prebuild: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        print(f"prebuild: {name}: {ref} ({time.monotonic() - started:.0f}s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
