#!/usr/bin/env bash
# Install napari-incontext from scratch on a fresh Debian/Ubuntu machine into ./.venv.
# System packages (Xvfb and the Qt/OpenGL libraries napari needs) come from apt when we are
# root or have sudo; the rest from PyPI. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# What PyQt6's xcb platform plugin links (`ldd .../PyQt6/Qt6/plugins/platforms/libqxcb.so`);
# libxcb-cursor0 is new in Qt 6, libxcb-xinerama0 is kept for PyQt5 environments.
APT_PACKAGES=(xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0
  libxkbcommon-x11-0 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-image0
  libxcb-xfixes0 libxcb-sync1 libgl1 libegl1 libfontconfig1 libdbus-1-3 libglib2.0-0)

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  if [ -z "$SUDO" ] || command -v sudo >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
  else
    echo "warning: not root and no sudo: install ${APT_PACKAGES[*]} yourself for the GUI" >&2
  fi
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch/torchvision first, pinned to a pair that works on CPU-only machines.
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[testing]"  # brings PyQt6 (pyproject.toml extras)
# qtpy prefers PyQt5 when both are present (a .venv made before the move to PyQt6).
if .venv/bin/python -m pip show -q PyQt5 >/dev/null 2>&1; then
  echo "note: .venv still has PyQt5, which qtpy picks over PyQt6;" \
    "'.venv/bin/python -m pip uninstall PyQt5' to use PyQt6" >&2
fi
echo "installed into $(pwd)/.venv"
