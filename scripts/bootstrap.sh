#!/usr/bin/env bash
# Creates ./.venv with the CPU build of torch and this project (editable, with dev tools), at the
# versions pinned in requirements/constraints.txt (refresh them with scripts/lock.sh).
# Idempotent: it reinstalls only when pyproject.toml, the constraints or the torch spec changed.
#   PYTHON            the interpreter the venv is made from (default python3; 3.11 or newer)
#   HITL_TORCH_SPEC   torch requirement to install first (default torch==2.13.0)
#   HITL_TORCH_INDEX  extra pip index for it, e.g. PyTorch's CPU wheel index on a machine with internet
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${HITL_VENV:-.venv}
TORCH_SPEC=${HITL_TORCH_SPEC:-torch==2.13.0}
CONSTRAINTS=requirements/constraints.txt
# pyproject.toml's requires-python: enum.StrEnum and tomllib are 3.11's.
need_python() {
  if ! "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "bootstrap: hitl-backend needs Python 3.11 or newer; $1 is $("$1" -V 2>&1 || echo 'not runnable')." \
         "Run with PYTHON=python3.11 (or newer)${2:+, or remove $2}." >&2
    exit 1
  fi
}
if [ -x "$VENV/bin/python" ]; then need_python "$VENV/bin/python" "$VENV"; else need_python "$PYTHON"; fi
want="$(cat pyproject.toml "$CONSTRAINTS" | sha256sum | cut -d' ' -f1) $TORCH_SPEC"
stamp="$VENV/.hitl-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/hitl" ]; then
  exit 0
fi
quiet_pip() { "$VENV/bin/pip" "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }
echo "bootstrap: installing into $VENV (first run takes a few minutes)" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
quiet_pip install -q --upgrade pip
# torch first, pinned to the CPU build: an unpinned torch from PyPI is a multi-GB CUDA build.
# The constraints leave torch out: HITL_TORCH_SPEC pins it.
quiet_pip install -q "$TORCH_SPEC" ${HITL_TORCH_INDEX:+--extra-index-url "$HITL_TORCH_INDEX"}
quiet_pip install -q -c "$CONSTRAINTS" -e '.[dev,postgres]'
"$VENV/bin/python" -c "import torch, transformers, backend; print('bootstrap: torch', torch.__version__)" >&2
echo "$want" > "$stamp"
