"""The README stays a front page that is true: its two commands run in CI, its links and file names resolve,
and the manual lives in docs/ (tests/test_docs.py)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_ci_runs_the_readme_test_command():
    readme = README.read_text()
    assert "./scripts/test.sh" in readme and "./scripts/run.sh" in readme
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_the_quick_start_says_how_to_change_the_backends_port():
    quick_start = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "export HITL_PORT=" in quick_start


def test_readme_is_a_front_page():
    lines = README.read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines: move the manual's content into docs/ (at most 250)"


def test_every_link_in_the_readme_resolves():
    """Relative links and images point at files in the repository (docs pages, screenshots), anchors aside."""
    targets = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert local, "the README links to no docs page"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"the README links to files that do not exist: {missing}"
    assert "docs/index.md" in local and "docs/reference/settings.md" in local


def test_every_setting_is_documented():
    """Every setting is in the generated reference the README links to (its drift is tests/test_docs.py's)."""
    from backend.settings import Settings

    reference = (ROOT / "docs" / "reference" / "settings.md").read_text()
    missing = [name for name in Settings.model_fields if f"`HITL_{name.upper()}`" not in reference]
    assert not missing, f"settings missing from docs/reference/settings.md (run python scripts/gen_docs.py): {missing}"
