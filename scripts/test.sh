#!/usr/bin/env bash
# The test command: set up the machine, lint, type-check, then run every test tier.
#   scripts/test.sh                     everything: the fast tier, then the Docker tier
#   scripts/test.sh -m "not docker"     the fast tier only (no Docker needed)
#   scripts/test.sh ARGS...             one pytest run with ARGS (e.g. a file, -k, -m docker)
# The fast tier runs on DOCKYARD_TEST_WORKERS pytest-xdist workers (default: one per core,
# at most 4); 1 runs it in this process. See docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# the fast tier needs no Docker: setup neither installs nor starts it
case " $* " in *"not docker"*) export DOCKYARD_NO_DOCKER=1 ;; esac
scripts/setup.sh
echo "== ruff"; ruff check provisioner cli tests bench
echo "== mypy"; mypy

cores="$(nproc 2>/dev/null || echo 2)"
workers="${DOCKYARD_TEST_WORKERS:-$((cores < 4 ? cores : 4))}"
# tests marked xdist_group("name") run on one worker, one after another; pytest-benchmark,
# where installed, warns under xdist (and warnings are errors here): it measures nothing then
parallel=(-n "$workers" --dist loadgroup -p no:benchmark)
[ "$workers" -gt 1 ] || parallel=(-p no:xdist)

if [ "$#" -gt 0 ]; then
  case " $* " in
    *"not docker"*) echo "== pytest (fast tier, $workers workers)"; exec python3 -m pytest -q "${parallel[@]}" "$@" ;;
    *) echo "== pytest"; exec python3 -m pytest -q "$@" ;;
  esac
fi

# Everything. The Docker tier's images (base by debootstrap, agents by pip and npm: minutes
# on a fresh machine, mostly waiting on the network) are built in the background while the
# fast tier runs; a Docker test needing one still being built waits for it (a file lock).
prebuild_log="$(mktemp -t dockyard-prebuild.XXXXXX)"
# nice (debootstrap runs here) and a low CPU weight for the builds' RUN steps (they run
# under dockerd, where nice does not reach): the fast tier keeps the cores it needs
DOCKYARD_BUILD_CPU_SHARES=64 nice -n 19 python3 -m tests.prebuild >"$prebuild_log" 2>&1 &
prebuild=$!
trap 'kill "$prebuild" 2>/dev/null || true' INT TERM

echo "== pytest: fast tier ($workers workers)"
fast=0
python3 -m pytest -q "${parallel[@]}" -m "not docker" || fast=$?

echo "== images for the Docker tier"
wait "$prebuild" || echo "(a prebuild failed; the Docker tier builds what is missing itself)"
cat "$prebuild_log"; rm -f "$prebuild_log"

echo "== pytest: Docker tier"
docker_tier=0
python3 -m pytest -q -m docker || docker_tier=$?

echo "== fast tier exit $fast, Docker tier exit $docker_tier"
[ "$fast" -eq 0 ] && [ "$docker_tier" -eq 0 ]
