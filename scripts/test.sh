#!/usr/bin/env bash
# The whole test suite from a clean clone: installs what is missing (including Label Studio
# for the end-to-end tests, cached in ~/.cache/hitl), lints, and runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check backend tests scripts
start=$(date +%s)
.venv/bin/python -m pytest "$@"
echo "test suite finished in $(( $(date +%s) - start ))s"
