#!/usr/bin/env bash
# The main job: set up, then run a task from the `scripted` preset end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DOCKYARD_HOME="${DOCKYARD_HOME:-$HOME/.local/share/dockyard}"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step dockyard template list
step dockyard preset list --template scripted
printf '\n\033[1m$ dockyard task create --template scripted --preset default --name demo-%s --wait "Write a haiku about containers"\033[0m\n' "$$"
name="demo-$$"
dockyard task create --template scripted --preset default --name "$name" --wait "Write a haiku about containers"
step dockyard task status "$name"
step dockyard task logs "$name"
step dockyard task send "$name" "Now explain it line by line" --wait
step dockyard task logs "$name"
step dockyard task list
step dockyard task delete -y "$name"
