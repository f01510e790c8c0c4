"""The repository alone passes its tests: the data they read is in it (tests/fixtures/data), and a
copy of what git tracks, with no shared/ folder above it and HITL_SHARED_DATA unset, runs the tests
that read each dataset. The full datasets stay optional, for the benchmarks and replays."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.data import data_dir, load_jsonl

ROOT = Path(__file__).resolve().parents[1]
# Unit tests that read the data (AG News: int8 serving; TREC-6: the fine-tune recipe; all three
# through load_jsonl, WNUT-17 included), and the commands' "what is missing" messages. The whole
# suite runs from a clean clone in CI (.ci/run), where these run again against the full data beside.
SUBSET = [
    "tests/test_int8.py",
    "tests/test_finetune_recipe.py::test_a_small_label_set_gets_at_least_min_steps",
    "tests/test_standalone.py::test_the_test_data_is_inside_the_repository_whatever_hitl_shared_data_says",
    "tests/test_bench_common.py",
]


def test_the_test_data_is_inside_the_repository_whatever_hitl_shared_data_says(monkeypatch, tmp_path):
    monkeypatch.setenv("HITL_SHARED_DATA", str(tmp_path / "elsewhere"))
    assert data_dir() == ROOT / "tests" / "fixtures" / "data"
    assert len(load_jsonl("ag_news", "train", 1100)) == 1100 and len(load_jsonl("trec", "test")) == 500
    with pytest.raises(ValueError, match="holds 300 rows and the test reads 301"):
        load_jsonl("wnut17", "train", 301)  # never fewer rows than asked, silently
    total = sum(p.stat().st_size for p in data_dir().rglob("*.jsonl"))
    assert total < 1_500_000, f"the test samples grew to {total:,} bytes"


def test_the_samples_are_the_documented_slices_of_the_full_data():
    """Where the full data is at hand (CI has it beside the clone), the samples are what
    tests/fixtures/make_samples.py cuts from it, byte for byte."""
    from tests.fixtures.make_samples import default_source, main

    try:
        source = default_source()
    except SystemExit as exc:
        pytest.skip(f"the full datasets are not here, so the slices cannot be compared ({exc})")
    assert main(["--source", str(source), "--check"]) == 0


def _copy_of_tracked_files(into: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out, as a commit would
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


@pytest.mark.slow  # whole processes, tens of seconds: ./scripts/test.sh --quick leaves it out
def test_a_copy_of_the_repository_alone_passes_the_tests_that_read_data(tmp_path):
    clone = _copy_of_tracked_files(tmp_path / "alone" / "hitl-backend")
    above = [str(p / "shared") for p in clone.parents if (p / "shared").exists()]
    assert not above, f"this check needs a folder with no shared/ above it: {above}"
    env = {k: v for k, v in os.environ.items() if k not in ("HITL_SHARED_DATA", "PYTHONPATH")}
    where = subprocess.run(
        [sys.executable, "-c", "import backend, tests.support.data as d; print(backend.__file__); print(d.data_dir())"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where == [str(clone / "backend" / "__init__.py"), str(clone / "tests" / "fixtures" / "data")]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUBSET],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-1000:]
