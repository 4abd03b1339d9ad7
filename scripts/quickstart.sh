#!/usr/bin/env bash
# The newcomer's first command: install everything, then run the main job on generated sample
# data with the offline `classic` backend. With a display, napari opens with the sample stack
# and the widget docked; without one (a server, CI) the same job runs from the command line.
#   --gui  force napari        --cli  force the command-line demo
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
mode="${1:-auto}"
if [ "$mode" = "auto" ]; then
  if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then mode="--gui"; else mode="--cli"; fi
fi
if [ "$mode" = "--gui" ]; then
  exec .venv/bin/python -m napari_incontext
fi
exec .venv/bin/napari-incontext demo --out demo_output
