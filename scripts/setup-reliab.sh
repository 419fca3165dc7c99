#!/usr/bin/env bash
# Installs what the reliability tests need besides Swift: Python's `kosoku`, which runs the
# Autobahn TestSuite's fuzzingclient cases against /v1/echo (AutobahnTests, scripts/autobahn.py).
# Safe to run again: it installs only what is missing. Without it AutobahnTests is skipped with
# a visible reason locally and fails under CI (CI=true).
set -euo pipefail
. "$(dirname "$0")/lib/install.sh"

pip_install 'import kosoku' kosoku
echo "reliability test tools: kosoku $(python3 -c 'import importlib.metadata as m; print(m.version("kosoku"))')"
