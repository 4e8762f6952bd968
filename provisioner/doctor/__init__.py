"""`dockyard doctor`: what is wrong with this Dockyard's machine, and what to do about it.

checks.py judges (pure), probes.py looks (I/O); `diagnose` runs them all here. A server
runs the same for `GET /api/dockyard/v1/doctor` (admins), so a remote server is diagnosed where
it runs. With the Swarm backend configured, swarm_checks.py's checks (manager, nodes,
network, registry, pulls) take the place of the `swarm` placeholder.
"""

from __future__ import annotations

from pathlib import Path

from provisioner.doctor.checks import CHECKS, ProbeError, Result, run_checks


def diagnose(home: Path | None = None, database_url: str | None = None) -> list[Result]:
    """Every check of this machine, with the Dockyard home's config and database."""
    from provisioner.doctor.probes import MachineProbes
    from provisioner.doctor.swarm_checks import configured, with_swarm

    probes = MachineProbes(home, database_url)
    try:
        settings = probes.settings()
    except ProbeError:
        settings = {}  # the checks that read the config say what is wrong with it
    if not configured(settings):
        return run_checks(probes)
    from provisioner.doctor.swarm_probes import SwarmMachineProbes

    swarm = SwarmMachineProbes(settings)
    try:
        return run_checks(probes, with_swarm(CHECKS, swarm))
    finally:
        swarm.close()
