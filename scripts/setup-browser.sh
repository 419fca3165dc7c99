#!/usr/bin/env bash
# Installs what the admin tests need besides Swift: Debian's chromium and chromium-driver (the
# dashboard is checked in a real headless browser) and Python's selenium and prometheus_client
# (the /metrics text is checked with a real Prometheus parser). Safe to run again: it installs
# only what is missing. Without it those tests are skipped locally and fail under CI.
set -euo pipefail
. "$(dirname "$0")/lib/install.sh"

apt_install chromium chromium-driver
pip_install 'import selenium, prometheus_client' selenium prometheus_client
echo "browser test tools: $(chromium --version 2>/dev/null | head -1), $(chromedriver --version 2>/dev/null | head -1 | cut -d' ' -f1-2)"
