#!/usr/bin/env bash
# The whole test suite from a clean clone: installs what is missing (including Label Studio
# for the end-to-end tests, cached in ~/.cache/hitl), lints, and runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# docker-compose.yml is validated by Compose itself (no Docker engine needed): install it if missing.
if ! command -v docker-compose >/dev/null && ! docker compose version >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing docker-compose (to validate docker-compose.yml)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose) >/dev/null
  else
    echo "test.sh: docker-compose is missing; tests/test_deploy.py will fail: install docker-compose" >&2
  fi
fi
# The report is checked in a real browser: headless Chromium from Debian's packages.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing chromium (headless screenshots of the report)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core) >/dev/null
  else
    echo "test.sh: chromium is missing; tests/test_report_at_scale.py will fail: install chromium" >&2
  fi
fi
.venv/bin/ruff check backend tests scripts
start=$(date +%s)
.venv/bin/python -m pytest "$@"
echo "test suite finished in $(( $(date +%s) - start ))s"
