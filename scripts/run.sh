#!/usr/bin/env bash
# The main job on one machine: installs what is missing, then runs Redis (embedded unless
# HITL_REDIS_URL is set), the RQ worker and the backend server. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/hitl run "$@"
