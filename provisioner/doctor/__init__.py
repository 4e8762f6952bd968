"""`dockyard doctor`: what is wrong with this Dockyard's machine, and what to do about it.

checks.py judges (pure), probes.py looks (I/O); `diagnose` runs them all here. A server
runs the same for `GET /api/dockyard/v1/doctor` (admins), so a remote server is diagnosed where
it runs.
"""

from __future__ import annotations

from pathlib import Path

from provisioner.doctor.checks import Result, run_checks


def diagnose(home: Path | None = None, database_url: str | None = None) -> list[Result]:
    """Every check of this machine, with the Dockyard home's config and database."""
    from provisioner.doctor.probes import MachineProbes

    return run_checks(MachineProbes(home, database_url))
