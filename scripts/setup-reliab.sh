#!/usr/bin/env bash
# Installs what the reliability tests need besides Swift: Python's `kosoku`, which runs the
# Autobahn TestSuite's fuzzingclient cases against /v1/echo (AutobahnTests, scripts/autobahn.py).
# Safe to run again: it installs only what is missing. Without it AutobahnTests is skipped with
# a visible reason locally and fails under CI (CI=true).
set -euo pipefail

SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  for attempt in 1 2 3 4 5 6; do
    # The dpkg lock may be held for a moment (unattended upgrades, another setup): retry.
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
      return 0
    fi
    echo "apt-get install ${missing[*]} failed (attempt $attempt; the dpkg lock may be busy); retrying in 10 s" >&2
    sleep 10
  done
  echo "could not install ${missing[*]}" >&2
  return 1
}

command -v python3 >/dev/null || apt_install python3
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip

if ! python3 -c 'import kosoku' 2>/dev/null; then
  # A Debian python3 is "externally managed"; a pyenv or venv one is not.
  for attempt in 1 2 3; do
    if python3 -m pip install --quiet --disable-pip-version-check kosoku 2>/dev/null || \
       python3 -m pip install --quiet --disable-pip-version-check --break-system-packages kosoku; then
      break
    fi
    echo "pip install kosoku failed (attempt $attempt); retrying in 5 s" >&2
    sleep 5
  done
fi
python3 -c 'import kosoku' || { echo "python3 cannot import kosoku" >&2; exit 1; }
echo "reliability test tools: kosoku $(python3 -c 'import importlib.metadata as m; print(m.version("kosoku"))')"
