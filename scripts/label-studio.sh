#!/usr/bin/env bash
# Install (cached in ~/.cache/hitl) and run a real Label Studio 1.23.2 on 127.0.0.1.
#   scripts/label-studio.sh install
#   scripts/label-studio.sh start [--port 8080] [--data-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m backend.tools.labelstudio_server "$@"
