"""Checking a workspace's resource limits when a task is rendered (pure).

Docker takes memory as a size string and CPUs as nano-CPUs; a bad value used to surface
only when the container was created (or, in a Terraform template, on a command line).
Checked here, a task with one is refused at creation with a 400 naming the field.
"""

from __future__ import annotations

import math
import re

from provisioner.errors import TemplateError

MEMORY_FORM = re.compile(r"^([0-9]{1,16})([bkmg]?)$", re.IGNORECASE)
MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses less than 6 MiB
MAX_MEMORY = 1024**4  # 1 TiB: more than any host here has
MAX_CPUS = 1024.0
MIN_CPUS = 0.01  # Docker's step: nano-CPUs in hundredths
MAX_PIDS = 4 * 1024 * 1024  # the kernel's largest pid_max
_UNIT = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def memory_bytes(text: str) -> int | None:
    """Bytes of a Docker memory size (512m, 2g, 1048576), or None if it is not one."""
    match = MEMORY_FORM.match(text.strip())
    if match is None:
        return None
    return int(match.group(1)) * _UNIT[match.group(2).lower()]


def check_resources(memory: str | None, cpus: float | None, pids: int | None, where: str) -> None:
    """Raise TemplateError naming the field, the value and the accepted form."""
    if memory is not None:
        size = memory_bytes(memory)
        if size is None or not MIN_MEMORY <= size <= MAX_MEMORY:
            raise TemplateError(
                f"{where}workspace.resources.memory: {_shown(memory)} is not a memory limit: "
                "a number with an optional unit b, k, m or g (512m, 2g), from 6m to 1024g"
            )
    if cpus is not None and (
        isinstance(cpus, bool) or not math.isfinite(cpus) or not MIN_CPUS <= cpus <= MAX_CPUS
    ):
        raise TemplateError(
            f"{where}workspace.resources.cpus: {_shown(cpus)} is not a CPU limit: a number of "
            f"cores from {MIN_CPUS} to {MAX_CPUS:g}"
        )
    if pids is not None and (isinstance(pids, bool) or not 1 <= pids <= MAX_PIDS):
        raise TemplateError(
            f"{where}workspace.resources.pids: {_shown(pids)} is not a process limit: a whole "
            f"number from 1 to {MAX_PIDS}"
        )
