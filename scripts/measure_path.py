"""The figures of docs/architecture.md: how many backend modules a correction reaches up to publish
(and with the re-rank), following imports with ``ast``; the longest product functions.

    .venv/bin/python scripts/measure_path.py [REPO]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".") / "backend"
PUBLISH = ["backend.server.events", "backend.jobs.queue", "backend.jobs.retrain"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imports(module: str) -> set[str]:
    """The backend modules ``module`` imports (inside functions too)."""
    path = MODULES[module]
    here = module.split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in MODULES}
    return found


def reached(starts: list[str]) -> set[str]:
    """Every backend module reachable from ``starts``, package ``__init__`` files left out."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += imports(module)
    return {m for m in seen if MODULES[m].name != "__init__.py"}


def main() -> None:
    print(f"up to publish: {len(reached(PUBLISH))} modules")
    print(f"with the re-rank: {len(reached([*PUBLISH, 'backend.jobs.sync_job']))} modules")
    lengths = sorted(
        (
            (node.end_lineno - node.lineno + 1, module, node.name)
            for module, path in MODULES.items()
            if ".tools" not in module
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno
        ),
        reverse=True,
    )
    print("longest product functions:", lengths[:5])
    print("over 80 lines:", sum(length > 80 for length, _, _ in lengths))


if __name__ == "__main__":
    main()
