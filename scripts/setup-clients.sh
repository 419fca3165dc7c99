#!/usr/bin/env bash
# Installs what the client tests need besides Swift and the browser tools
# (scripts/setup-browser.sh): tmux, which drives `chatgate chat` in a real terminal
# (EndToEndTests' ChatCommandTests). Safe to run again: it installs only what is missing.
set -euo pipefail

SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"

if ! command -v tmux >/dev/null; then
  for attempt in 1 2 3 4 5 6; do
    # The dpkg lock may be held for a moment (unattended upgrades, another setup): retry.
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
       $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null; then
      break
    fi
    echo "apt-get install tmux failed (attempt $attempt; the dpkg lock may be busy); retrying in 10 s" >&2
    sleep 10
  done
fi
command -v tmux >/dev/null || { echo "could not install tmux" >&2; exit 1; }
echo "client test tools: $(tmux -V)"
