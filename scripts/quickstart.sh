#!/usr/bin/env bash
# The newcomer's first command: install everything, then run the main job on generated sample
# data with the offline `classic` backend. Pass --gui to open napari with the sample instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
if [ "${1:-}" = "--gui" ]; then
  exec .venv/bin/python -m napari_incontext
fi
.venv/bin/napari-incontext demo --out demo_output
