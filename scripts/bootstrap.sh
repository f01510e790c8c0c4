#!/usr/bin/env bash
# Creates ./.venv with the CPU build of torch and this project (editable, with dev tools).
# Idempotent: it reinstalls only when pyproject.toml or the torch spec changed.
#   HITL_TORCH_SPEC   torch requirement to install first (default torch==2.13.0)
#   HITL_TORCH_INDEX  extra pip index for it, e.g. PyTorch's CPU wheel index on a machine with internet
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${HITL_VENV:-.venv}
TORCH_SPEC=${HITL_TORCH_SPEC:-torch==2.13.0}
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_SPEC"
stamp="$VENV/.hitl-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/hitl" ]; then
  exit 0
fi
quiet_pip() { "$VENV/bin/pip" "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }
echo "bootstrap: installing into $VENV (first run takes a few minutes)" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
quiet_pip install -q --upgrade pip
# torch first, pinned to the CPU build: an unpinned torch from PyPI is a multi-GB CUDA build.
quiet_pip install -q "$TORCH_SPEC" ${HITL_TORCH_INDEX:+--extra-index-url "$HITL_TORCH_INDEX"}
quiet_pip install -q -e '.[dev,postgres]'
"$VENV/bin/python" -c "import torch, transformers, backend; print('bootstrap: torch', torch.__version__)" >&2
echo "$want" > "$stamp"
