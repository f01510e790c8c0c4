"""The docs site stays true: generated references match the code, the site builds with --strict (no broken
link, anchor or page left out of the nav), and every setting and file the pages name exists."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))

# HITL_* variables that are not settings: read by scripts/bootstrap.sh, docker-compose.yml and the test tools
# (listed in docs/operations/configuration.md).
NOT_SETTINGS = {
    "HITL_TORCH_SPEC",
    "HITL_TORCH_INDEX",
    "HITL_VENV",
    "HITL_TORCH_GPU_INDEX",
    "HITL_AUDIT_DB_PASSWORD",
    "HITL_SHARED_DATA",
    "HITL_LS_VENV",
    "HITL_STREAM_DATASET",  # tests/e2e/test_labeling_stream.py: which dataset its replay labels
}


@pytest.fixture(scope="module")
def gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(gen_docs):
    return gen_docs.render()


@pytest.mark.parametrize("page", ["docs/reference/settings.md", "docs/reference/cli.md"])
def test_generated_reference_matches_the_code(generated, page):
    committed = (ROOT / page).read_text() if (ROOT / page).exists() else ""
    assert committed == generated[page], f"{page} differs from the code: run python scripts/gen_docs.py"


def test_settings_reference_has_every_setting_with_its_description(gen_docs, generated):
    from backend.settings import Settings

    page = generated["docs/reference/settings.md"]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(HITL_\w+)` \|.*$", page, re.M)}
    assert set(rows) == {f"HITL_{name.upper()}" for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        assert field.description, f"HITL_{name.upper()}: give it Field(description=...) in backend/settings.py"
        assert rows[f"HITL_{name.upper()}"].endswith(f"| {gen_docs._cell(field.description)} |")
    assert "| `HITL_GATE_MARGIN` | number (≥ 0) | `0.01` |" in page
    assert "| `HITL_SCHEDULE_FILE` | text | `backend/jobs/schedule.py` |" in page  # no machine-specific path


def test_cli_reference_has_every_command(generated):
    from backend.cli.main import build_parser

    page = generated["docs/reference/cli.md"]
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    for name, sub in commands.choices.items():
        assert f"`hitl {name}`" in page
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in page or f", {option}" in page, f"hitl {name} {option}"
    assert "`hitl bench finetune`" in page and "`hitl configs load`" in page and "`hitl models rollback`" in page


def test_docs_site_builds_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "site" / "reference" / "settings" / "index.html").exists()


def test_every_page_is_in_the_nav():
    """mkdocs.yml names every page (except the summaries hitl simulate writes beside its curves)."""
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(DOCS).as_posix() for p in PAGES if p.parent != DOCS / "simulation"]
    missing = [page for page in pages if f": {page}" not in nav]
    assert not missing, f"pages missing from mkdocs.yml's nav: {missing}"


def test_every_hitl_variable_the_docs_name_is_a_setting():
    from backend.settings import Settings

    settings = {f"HITL_{name.upper()}" for name in Settings.model_fields}
    unknown = {}
    for page in [ROOT / "README.md", *PAGES]:
        for name in re.findall(r"\bHITL_[A-Z0-9_]*[A-Z0-9]\b", page.read_text()):
            if name not in settings and name not in NOT_SETTINGS and name != "HITL_BASIC_AUTH":
                unknown.setdefault(name, page.relative_to(ROOT).as_posix())
    assert not unknown, f"the docs name HITL_ variables that are not settings (renamed or removed?): {unknown}"


def test_every_file_the_docs_name_exists():
    """The architecture page, the correction's path and the concepts name real files, so a move must update them."""
    names: dict[str, str] = {}
    for page in [ROOT / "README.md", *PAGES]:
        if page.name == "labelstudio-facts.md":  # names files of Label Studio's source, not ours
            continue
        for name in re.findall(r"`([\w./-]+\.py)`", page.read_text()):
            if not name.startswith("label_studio/"):  # Label Studio's source, not ours
                names.setdefault(name, page.relative_to(ROOT).as_posix())
    assert len(names) > 20
    missing = []
    for name, page in sorted(names.items()):
        if "/" in name:
            if not ((ROOT / name).exists() or (ROOT / "backend" / name).exists()):
                missing.append(f"{name} ({page})")
        elif not list((ROOT / "backend").rglob(name)) and not (ROOT / "tests" / name).exists():
            missing.append(f"{name} ({page})")
    assert not missing, f"the docs name files that do not exist: {missing}"


def test_every_screenshot_is_shown_on_a_page():
    text = "".join(page.read_text() for page in PAGES)
    unused = [p.name for p in sorted((DOCS / "screenshots").glob("*.png")) if f"screenshots/{p.name})" not in text]
    assert not unused, f"screenshots no docs page shows: {unused}"
