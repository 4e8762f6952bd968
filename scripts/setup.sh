#!/usr/bin/env bash
# Installs what Dockyard needs on a fresh Debian machine and starts Docker if it is down.
# Idempotent: safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# DOCKYARD_NO_DOCKER=1 (set by `scripts/test.sh -m "not docker"`): the fast tier, which
# must run on a machine without Docker, so Docker is neither installed nor started.
no_docker="${DOCKYARD_NO_DOCKER:-}"

missing=()
if [ -z "$no_docker" ]; then
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  # the swarm tier (tests/swarm.py): a registry every swarm node pulls from, and the
  # tools that build nodes in network namespaces
  command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
  command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
fi
# the Coder migration tests run Coder's documented curl + jq scripts unchanged
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# the repository tests serve a real repository (git http-backend) and clone it; the CLI's
# task pull/apply run git too
command -v git >/dev/null 2>&1 || missing+=(git)
# ...and over ssh: a real sshd (tests/git_server.py runs its own, on a free port, never
# the system's) and ssh-keygen for deploy and host keys
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
# the store's tests also run against a throwaway PostgreSQL cluster
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
# the dashboard's browser tests drive Debian's Chromium through Playwright (Playwright's
# own browser downloads need a network this may not have)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # the package starts a registry on :5000 where systemd runs; the tests run their own
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
  # likewise the system's sshd on :22: the tests start theirs
  if [[ " ${missing[*]} " == *" openssh-server "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now ssh >/dev/null 2>&1 || true
  fi
fi

if [ -z "$no_docker" ] && ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd (log: /var/log/dockyard-dockerd.log)"
  $SUDO sh -c 'nohup dockerd >/var/log/dockyard-dockerd.log 2>&1 &'
  for _ in $(seq 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/dockyard-dockerd.log" >&2; exit 1; }
fi

echo "setup: installing dockyard (pip install -e .[dev])"
python3 -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v -E "WARNING: (Running pip as|Location)" || true
python3 -c "import provisioner, cli" || { echo "setup: dockyard did not install" >&2; exit 1; }
