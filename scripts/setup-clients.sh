#!/usr/bin/env bash
# Installs what the client tests need besides Swift and the browser tools
# (scripts/setup-browser.sh): tmux, which drives `chatgate chat` in a real terminal
# (EndToEndTests' ChatCommandTests). Safe to run again: it installs only what is missing.
set -euo pipefail
. "$(dirname "$0")/lib/install.sh"

apt_install tmux
echo "client test tools: $(tmux -V)"
