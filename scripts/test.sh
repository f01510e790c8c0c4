#!/usr/bin/env bash
# The whole test suite from a clean clone: installs what is missing (including Label Studio
# for the end-to-end tests, cached in ~/.cache/hitl), lints, and runs pytest. Arguments go to pytest.
#   ./scripts/test.sh            everything (what CI runs)
#   ./scripts/test.sh --quick    unit tests only: no Label Studio (e2e), no replays or benchmarks
#                                (tools), no real MiniLM (slow); minutes, and it says how to run the rest
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
if [ "${1:-}" = "--quick" ]; then
  quick=1
  shift
fi
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
.venv/bin/ruff check backend tests scripts examples
.venv/bin/ruff format --check backend tests scripts examples  # the formatter owns the layout: run `ruff format` to apply it
start=$(date +%s)
status=0
if [ "$quick" = 1 ]; then
  .venv/bin/python -m pytest -m "not e2e and not tools and not slow" "$@" || status=$?
  echo "quick tier (unit tests) finished in $(( $(date +%s) - start ))s; it left out the end-to-end tests against" \
       "Label Studio (-m e2e), the replays and benchmarks (-m tools) and the real-MiniLM tests (-m slow)." \
       "The rest: ./scripts/test.sh -m \"e2e or tools or slow\"; everything, as CI runs it: ./scripts/test.sh"
else
  .venv/bin/python -m pytest "$@" || status=$?
  echo "test suite finished in $(( $(date +%s) - start ))s"
fi
exit "$status"
