"""The layering, kept true: each package imports only from its own layer's packages or lower ones.

foundation (ids, memory, settings, logs, plugin, plugins) < labeling < stores < models < serving < learning < monitoring
< query < jobs < server, services, oversight < admin < cli, tools. The product's path never imports ``tools``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import backend

ROOT = Path(backend.__file__).parent
LAYERS: list[set[str]] = [
    {
        "backend",
        "backend.ids",
        "backend.memory",
        "backend.settings",
        "backend.logs",
        "backend.plugin",
        "backend.plugins",
    },
    {"backend.labeling"},
    {"backend.stores"},
    {"backend.models"},
    {"backend.serving"},
    {"backend.learning"},
    {"backend.monitoring"},
    {"backend.query"},
    {"backend.jobs"},
    {"backend.server", "backend.services", "backend.oversight"},
    {"backend.admin"},
    {"backend.cli", "backend.tools", "backend.__main__"},
]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def owner(module: str) -> str:
    """The layered unit a module belongs to: its package below ``backend``, or the module itself."""
    parts = module.split(".")
    if len(parts) >= 2 and (ROOT / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module if len(parts) <= 2 else ".".join(parts[:2])


def layer(module: str) -> int:
    unit = owner(module)
    for i, units in enumerate(LAYERS):
        if unit in units:
            return i
    raise AssertionError(f"{module} ({unit}) is in no layer: add it to LAYERS in {__file__}")


def imports(path: Path, root: Path = ROOT) -> list[str]:
    """Every backend module ``path`` imports, at any depth (inside functions and TYPE_CHECKING too);
    ``root`` is the ``backend`` package folder ``path`` lies in."""
    here = module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found += [
                f"{base}.{a.name}"
                if (root.parent / f"{base}.{a.name}".replace(".", "/")).exists()
                or (root.parent / (f"{base}.{a.name}".replace(".", "/") + ".py")).exists()
                else base
                for a in node.names
            ]
    return [m for m in found if m == "backend" or m.startswith("backend.")]


def test_every_package_imports_only_its_own_layer_or_lower():
    violations = []
    for path in sorted(ROOT.rglob("*.py")):
        mine = module_name(path)
        for target in imports(path):
            if layer(target) > layer(mine):
                violations.append(f"{mine} (layer {layer(mine)}) imports {target} (layer {layer(target)})")
    assert not violations, "\n".join(violations)


def test_the_product_never_imports_the_tools():
    product = [p for p in ROOT.rglob("*.py") if owner(module_name(p)) not in {"backend.tools", "backend.cli"}]
    offenders = [f"{module_name(p)} imports {t}" for p in product for t in imports(p) if t.startswith("backend.tools")]
    assert not offenders, "\n".join(offenders)


def test_no_import_cycles_between_packages():
    edges: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        mine = owner(module_name(path))
        edges.setdefault(mine, set()).update(owner(t) for t in imports(path) if owner(t) != mine)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges.get(start, ()))

    cycles = [f"{a} <-> {b}" for a in edges for b in edges[a] if reaches(b, a, {b})]
    assert not cycles, "\n".join(sorted(cycles))


def test_the_checker_sees_a_violation(tmp_path):
    """The walk must notice an upward import, or the tests above would pass on anything. The probe
    lies in a copy of the package's layout under tmp_path: nothing is written into ``backend``."""
    root = tmp_path / "backend"
    fake = root / "models" / "_layering_probe.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from backend.jobs.queue import RetrainQueue\n    from ..stores import registry\n")
    found = imports(fake, root)
    assert "backend.jobs.queue" in found and "backend.stores" in found
    assert module_name(fake, root) == "backend.models._layering_probe"
    assert layer("backend.jobs.queue") > layer(module_name(fake, root))
