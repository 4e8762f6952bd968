#!/usr/bin/env bash
# The main job: set up, then run a task from the `scripted` preset end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
set -x
dockyard template list
task=$(dockyard task create --template scripted --preset default --wait -q "Write a haiku about containers")
dockyard task status "$task"
dockyard task logs "$task"
dockyard task send "$task" "Now explain it"
sleep 0.5
dockyard task status "$task" --watch --until-idle 2>/dev/null || sleep 3
dockyard task logs "$task"
dockyard task list
dockyard task delete -y "$task"
