# Sourced by scripts/setup*.sh: install what is missing, retrying while the dpkg lock or the
# package index is busy. Safe to run again: a package already there is not touched.

SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"

# apt_install [--no-recommends] PACKAGE...: the Debian packages not yet installed.
apt_install() {
  local options=()
  if [[ ${1:-} == --no-recommends ]]; then options=(--no-install-recommends); shift; fi
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  for attempt in 1 2 3 4 5 6; do
    # The dpkg lock may be held for a moment (unattended upgrades, another setup): retry.
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" "${missing[@]}" >/dev/null; then
      return 0
    fi
    echo "apt-get install ${missing[*]} failed (attempt $attempt; the dpkg lock may be busy); retrying in 10 s" >&2
    sleep 10
  done
  echo "could not install ${missing[*]}" >&2
  return 1
}

# pip_install 'PYTHON CHECK' PACKAGE...: the PyPI packages, unless the check already runs.
pip_install() {
  local check=$1; shift
  python3 -c "$check" >/dev/null 2>&1 && return 0
  command -v python3 >/dev/null || apt_install python3
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  for attempt in 1 2 3; do
    # A Debian python3 is "externally managed"; a pyenv or venv one is not.
    if python3 -m pip install --quiet --disable-pip-version-check "$@" 2>/dev/null || \
       python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"; then
      break
    fi
    echo "pip install $* failed (attempt $attempt); retrying in 5 s" >&2
    sleep 5
  done
  python3 -c "$check" || { echo "python3 cannot run: $check" >&2; return 1; }
}
