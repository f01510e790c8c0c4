"""What a new user gets from the repository alone: the licence pyproject.toml names, one Python
version everywhere it is stated, a lock that covers the install, and a non-editable install whose
``hitl --version`` runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from backend.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_licence_file_is_the_apache_2_licence_pyproject_names():
    assert PYPROJECT["project"]["license"] == "Apache-2.0" and PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"] and "END OF TERMS AND CONDITIONS" in text


def test_python_311_is_required_wherever_a_version_is_stated():
    """enum.StrEnum (backend/ids.py) and tomllib are 3.11's: pyproject, ruff, the image and
    bootstrap.sh (which CI runs) all say 3.11, and this interpreter is one."""
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py311"
    assert re.search(r"^FROM python:3\.11-slim$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert "sys.version_info < (3, 11)" in (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert sys.version_info >= (3, 11)


def test_bootstrap_refuses_an_older_python_and_says_which(tmp_path):
    old = tmp_path / "python3.10"
    old.write_text('#!/bin/sh\n[ "$1" = -V ] && echo "Python 3.10.12"\nexit 1\n')
    old.chmod(0o755)
    env = {**os.environ, "PYTHON": str(old), "HITL_VENV": str(tmp_path / "venv")}
    run = subprocess.run(["bash", str(ROOT / "scripts" / "bootstrap.sh")], env=env, capture_output=True, text=True)
    assert run.returncode == 1 and not (tmp_path / "venv").exists()
    assert f"needs Python 3.11 or newer; {old} is Python 3.10.12" in run.stderr, run.stderr


def _installed_closure(root: str, extras: tuple[str, ...]) -> set[str]:
    seen, todo = set(), [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        name = canonicalize_name(name)
        if name in seen:
            continue
        seen.add(name)
        for line in metadata.distribution(name).requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *wanted)):
                todo.append((requirement.name, ()))
    return seen


def test_the_lock_pins_everything_bootstrap_installs_but_torch():
    pins = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    needed = _installed_closure("hitl-backend", ("dev", "postgres")) - {"hitl-backend", "torch"}
    assert not needed - pins.keys(), f"not in the lock (run ./scripts/lock.sh): {sorted(needed - pins.keys())}"
    assert "torch" not in pins and "hitl-backend" not in pins  # HITL_TORCH_SPEC pins torch


def test_hitl_version_is_the_projects(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"hitl {PYPROJECT['project']['version']}\n"


def test_a_non_editable_install_runs_hitl_version(tmp_path):
    """The wheel `pip install .` builds, installed on its own (dependencies from this venv), away
    from the sources: the package, its entry point and its licence are all in it."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "backend", source / "backend", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("hitl_backend-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (info,) = site.glob("hitl_backend-*.dist-info")
    assert "hitl = backend.cli.main:main" in (info / "entry_points.txt").read_text()
    assert list(info.rglob("LICENSE"))
    hitl = (
        f"import sys; sys.path.insert(0, {str(site)!r}); import backend; assert backend.__file__.startswith("
        f"{str(site)!r}), backend.__file__; from backend.cli.main import main; sys.exit(main())"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", hitl, "--version"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout == f"hitl {PYPROJECT['project']['version']}\n", run.stderr
