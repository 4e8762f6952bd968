#!/usr/bin/env bash
# The test command: set up the machine, lint, type-check, then run every test tier.
# Fast tier only (no Docker needed):  scripts/test.sh -m "not docker"
set -euo pipefail
cd "$(dirname "$0")/.."
# the fast tier needs no Docker: setup neither installs nor starts it
case " $* " in *"not docker"*) export DOCKYARD_NO_DOCKER=1 ;; esac
scripts/setup.sh
echo "== ruff"; ruff check provisioner cli tests bench
echo "== mypy"; mypy
echo "== pytest"; python3 -m pytest -q "$@"
