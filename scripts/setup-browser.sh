#!/usr/bin/env bash
# Installs what the admin tests need besides Swift: Debian's chromium and chromium-driver (the
# dashboard is checked in a real headless browser) and Python's selenium and prometheus_client
# (the /metrics text is checked with a real Prometheus parser). Safe to run again: it installs
# only what is missing. Without it those tests are skipped locally and fail under CI.
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

apt_install chromium chromium-driver
command -v python3 >/dev/null || apt_install python3
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip

if ! python3 -c 'import selenium, prometheus_client' 2>/dev/null; then
  # A Debian python3 is "externally managed"; a pyenv or venv one is not.
  python3 -m pip install --quiet --disable-pip-version-check selenium prometheus_client 2>/dev/null || \
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages selenium prometheus_client
fi
python3 -c 'import selenium, prometheus_client' || { echo "python3 cannot import selenium and prometheus_client" >&2; exit 1; }
echo "browser test tools: $(chromium --version 2>/dev/null | head -1), $(chromedriver --version 2>/dev/null | head -1 | cut -d' ' -f1-2)"
