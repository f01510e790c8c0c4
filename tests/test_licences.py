"""Licence hygiene: every runtime dependency's licence, read from the installed metadata, is
permissive or file-level (MPL-2.0); a copyleft one fails, and docs/licences.md lists them as installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("hitl_licences", ROOT / "scripts" / "licences.py")
licences = sys.modules.setdefault("hitl_licences", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(licences)  # in sys.modules first: its dataclass looks its module up there


def test_no_runtime_dependency_has_a_copyleft_or_unknown_licence():
    found = licences.licences()
    assert len(found) > 50 and {"torch", "transformers", "flask", "label-studio-sdk"} <= {f.name for f in found}
    assert "hitl-backend" not in {f.name for f in found}
    assert not licences.refused(found), [(f.name, f.licence, f.source) for f in licences.refused(found)]


def test_docs_licences_md_is_the_installed_metadata():
    expected = licences.document(licences.licences())
    assert (ROOT / "docs" / "licences.md").read_text(encoding="utf-8") == expected, (
        "docs/licences.md differs from the installed metadata: .venv/bin/python scripts/licences.py --write"
    )


@pytest.mark.parametrize(
    ("expression", "category"),
    [
        ("MIT", "permissive"),
        ("Apache-2.0 AND BSD-2-Clause", "permissive"),
        ("Apache-2.0 WITH LLVM-exception", "permissive"),
        ("MPL-2.0 AND MIT", "weak copyleft (file-level)"),
        ("GPL-3.0-only", "copyleft"),
        ("AGPL-3.0-or-later", "copyleft"),
        ("LGPL-2.1-only", "copyleft"),
        ("MIT AND LGPL-3.0-or-later", "copyleft"),
        ("GPL-2.0-or-later OR MIT", "permissive"),  # a permissive alternative is offered
        ("(LGPL-3.0-only OR MPL-2.0)", "weak copyleft (file-level)"),
        ("LicenseRef-Proprietary", "unknown"),
    ],
)
def test_spdx_expressions_are_classified_by_their_most_permissive_choice(expression, category):
    assert licences.category(expression) == category


def _plant(site: Path, name: str, *fields: str, requires: tuple[str, ...] = ()) -> None:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.4", f"Name: {name}", "Version: 1.0", *fields]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        (("License-Expression: GPL-3.0-only",), "GPL-3.0-only (copyleft"),
        (("Classifier: License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)",), "LGPL (copyleft"),
        (("License: GNU Affero General Public License v3",), "AGPL-3.0 (copyleft"),
        ((), "UNKNOWN (unknown"),  # no licence at all: looked at by hand before it is accepted
    ],
)
def test_a_planted_copyleft_dependency_fails_the_check(tmp_path, fields, shown):
    """A hitl-backend whose Requires-Dist pulls in 'plantedlib' (first on the path, as an installed
    distribution would be): the check run as documented exits 1 and names it."""
    _plant(
        tmp_path,
        "hitl-backend",
        "License-Expression: Apache-2.0",
        requires=("flask>=3", "plantedlib", "psycopg; extra == 'postgres'"),
    )
    _plant(tmp_path, "plantedlib", *fields)
    found = licences.licences(path=[str(tmp_path), *sys.path])
    assert [f.name for f in licences.refused(found)] == ["plantedlib"]
    assert "flask" in {f.name for f in found} and "psycopg" not in {f.name for f in found}  # extras are not walked
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "licences.py")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert run.returncode == 1 and f"refused: plantedlib 1.0: {shown}" in run.stderr, run.stderr


def test_file_level_and_dual_licences_pass(tmp_path):
    _plant(tmp_path, "hitl-backend", "License-Expression: Apache-2.0", requires=("mpl-thing", "dual-thing"))
    _plant(tmp_path, "mpl-thing", "Classifier: License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)")
    _plant(tmp_path, "dual-thing", "License-Expression: GPL-2.0-or-later OR MIT")
    found = {f.name: f for f in licences.licences(path=[str(tmp_path), *sys.path])}
    assert found["mpl-thing"].licence == "MPL-2.0" and found["dual-thing"].category == "permissive"
    assert not licences.refused(found.values())
